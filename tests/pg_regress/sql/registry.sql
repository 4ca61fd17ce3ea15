-- Model registry: register (validated), activate, roll back, class-count changes, aborted
-- transactions, the append-only log. Fixtures: tests/python/make_fixtures.py.
SET search_path = public, txclass;
\set VERBOSITY default
-- nothing activated: the bundled default serves
SELECT count(*) FROM active_model;
SELECT source, labels FROM model_info();
-- rollback with no model activated at all
SELECT * FROM rollback_model();
-- register refuses what would not serve, naming the cause
SELECT register_model('broken', '/tmp/txclass-fixtures/corrupt_onnx');
SELECT register_model('broken', '/tmp/txclass-fixtures/extra_label');
SELECT register_model('broken', '/tmp/txclass-fixtures/wrong_inputs');
SELECT register_model('broken', '/tmp/txclass-fixtures/missing');
SELECT register_model('broken', 'relative/path');
SELECT register_model('broken', '/tmp/txclass-fixtures/../txclass-fixtures/good');
SELECT register_model('no spaces allowed', 'txclass-merchants-v1');
SELECT count(*) AS registered_after_refusals FROM models;
-- register: a bundled name, and absolute paths (a superuser may)
SELECT name, num_labels, registered_by, directory LIKE '%/txclass/models/txclass-merchants-v1' AS bundled_dir
FROM register_model('v1', 'txclass-merchants-v1', '{"note": "bundled"}');
SELECT name, num_labels FROM register_model('relabelled', '/tmp/txclass-fixtures/relabelled');
SELECT name, num_labels FROM register_model('wide', '/tmp/txclass-fixtures/wide5000');
-- same files under a second name: allowed, with a NOTICE
SELECT name FROM register_model('v1-again', '/tmp/txclass-fixtures/good');
-- names are unique and registered models immutable
SELECT register_model('v1', '/tmp/txclass-fixtures/good');
UPDATE models SET directory = '/tmp' WHERE name = 'v1';
-- activate an unknown model
SELECT * FROM activate_model('nope');
-- the first activation; rollback has nowhere to go yet
SELECT model, action, previous, deployed_by, reason FROM activate_model('v1', reason => 'first');
SELECT * FROM rollback_model();
SELECT model, source FROM model_info();
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
-- published to shared memory at commit: backends read it there, not from the tables
SELECT _published_model();
-- already active: a NOTICE, no new deployment
SELECT model, action FROM activate_model('v1');
-- an aborted activation changes nothing
BEGIN;
SELECT model FROM activate_model('relabelled');
ROLLBACK;
SELECT name FROM active_model;
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
-- and a rolled-back savepoint neither
BEGIN;
SAVEPOINT s;
SELECT model FROM activate_model('relabelled');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT name FROM active_model;
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
-- a switch: the same backend serves the new model at its next call, never an old cache entry
SELECT model, action, previous IS NOT NULL AS has_previous FROM activate_model('relabelled', reason => 'try relabelled');
SELECT (d).label, (d).model LIKE 'relabelled@%' AS from_relabelled
FROM (SELECT classify_transaction_detail('STARBUCKS STORE 01234 SEATTLE WA') AS d) x;
-- class-count change: 372 -> 5,000 classes serves without error, same answers under the same names
SELECT model, action FROM activate_model('wide', reason => '5000 classes');
SELECT labels, source FROM model_info();
SELECT _published_model();
SELECT count(*) AS labels, count(*) FILTER (WHERE label LIKE 'Synthetic class %') AS synthetic FROM labels();
CREATE TEMP TABLE probe(d text);
INSERT INTO probe VALUES ('STARBUCKS STORE 01234 SEATTLE WA'), ('SQ *BLUE BOTTLE COF 8473 OAKLAND CA'),
    ('AMZN MKTP US*2K3L4M5N6'), ('TESCO STORES 6292'), ('UBER *TRIP HELP.UBER.COM'), ('SHELL OIL 57444 HOUSTON TX');
CREATE TEMP TABLE wide_answers AS SELECT d, (classify_transaction_detail(d)).* FROM probe;
SELECT d, label, model LIKE 'wide@%' AS from_wide FROM wide_answers ORDER BY d;
SELECT count(*) AS batch_rows FROM classify_batch((SELECT array_agg(d) FROM probe)) b WHERE b.label IS NOT NULL;
-- rollback steps back one deployment at a time: wide -> relabelled -> v1
SELECT model, action, reason FROM rollback_model('wide misbehaves');
SELECT labels FROM model_info();
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
SELECT model, action FROM rollback_model();
SELECT classify_transaction('STARBUCKS STORE 01234 SEATTLE WA');
-- v1 was the first model: nothing before it
SELECT * FROM rollback_model();
-- the bundled model's answers equal the 5,000-class model's (same names), confidence aside
SELECT count(*) AS same_label FROM wide_answers w WHERE w.label = classify_transaction(w.d);
-- the log is append-only and complete
SELECT id, model, action, previous, reason FROM deployments ORDER BY id;
UPDATE deployments SET reason = 'rewritten';
DELETE FROM deployments;
TRUNCATE deployments;
SELECT count(*) FROM deployments;
-- a pinned txclass.model overrides the registry for the session
SET txclass.model = '/tmp/txclass-fixtures/relabelled';
SELECT source, model LIKE 'relabelled@%' AS pinned FROM model_info();
RESET txclass.model;
SELECT source, model FROM model_info();
