-- Honest confidence (0.3.0): calibration, levels, abstention; the labeling loop.
SET search_path = public, txclass;
SET txclass.model = 'txclass-merchants-v3';
-- the bundled model brings its temperature, fitted thresholds and floor
SELECT model LIKE 'txclass-merchants-v3@%' AS v3, temperature > 0 AS has_temperature, levels_fitted,
       very_high >= high AND high >= medium AS nested, min_confidence = model_min_confidence AS floor_is_models
FROM confidence_info();
-- a level is a cut of the confidence, at the model's thresholds
SELECT confidence_level(1.0) AS top, confidence_level(0.0) AS bottom,
       confidence_level(high) = 'high' OR confidence_level(high) = 'very_high' AS at_high,
       confidence_level((medium - 0.0001)::real) AS below_medium
FROM confidence_info();
CREATE TABLE conf_txns (id int PRIMARY KEY, descriptor text);
INSERT INTO conf_txns VALUES
  (1, 'SQ *BLUE BOTTLE COF 8473 OAKLAND CA'),
  (2, 'TESCO STORES 6292'),
  (3, 'NETFLIX.COM 866-579-7172 CA'),
  (4, 'EYRE & ELLISTON LTD'),          -- a local supplier: no brand
  (5, 'OXFORDSHIRE COUNTY COUNCIL'),   -- a public body: no brand
  (6, 'BUCKS RECYCLING LTD'),
  (7, '');
-- brands are answered; businesses that are no brand abstain (label NULL, source abstain,
-- confidence and level kept)
SELECT id, (d).label, (d).source, (d).level,
       (d).confidence >= (SELECT min_confidence FROM confidence_info()) AS above_floor
FROM (SELECT id, classify_transaction_detail(descriptor) AS d FROM conf_txns) s ORDER BY id;
-- the scalar function says NULL where the detail abstains
SELECT count(*) AS disagree FROM conf_txns
WHERE classify_transaction(descriptor) IS DISTINCT FROM (classify_transaction_detail(descriptor)).label;
-- classify_batch: the same answers, with level and source
SELECT b.ordinality, b.label, b.level, b.source FROM classify_batch(ARRAY(SELECT descriptor FROM conf_txns ORDER BY id)) b;
SELECT count(*) AS batch_vs_detail FROM classify_batch(ARRAY(SELECT descriptor FROM conf_txns ORDER BY id)) b
JOIN conf_txns t ON t.id = b.ordinality
WHERE b.label IS DISTINCT FROM (classify_transaction_detail(t.descriptor)).label
   OR b.level IS DISTINCT FROM (classify_transaction_detail(t.descriptor)).level
   OR b.source IS DISTINCT FROM (classify_transaction_detail(t.descriptor)).source;
-- name evidence (0.4.0): a brand answer whose descriptor does not carry the brand's name is held
-- at medium at most — same label, same confidence; with the name it keeps its level. The same on
-- every path (detail, batch, trigger).
CREATE TABLE named_txns (id int PRIMARY KEY, descriptor text);
SELECT relid FROM attach('named_txns', 'descriptor');
SET txclass.min_confidence = 0;   -- with min_level = low: every top-1 answer (the raw model)
SET txclass.min_level = low;
INSERT INTO named_txns VALUES (1, 'SMITH & LOW LTD'), (2, 'WHSMITH OXFORD STN'), (3, 'BOOKER LIMITED OXFORD'),
                              (4, 'HOTEL AT BOOKING.COM'), (5, 'GO OUTDOORS OXFORD'), (6, 'IN N OUT BURGER #12');
-- (a low-level answer is a guess between near-tied classes, which CPUs with other vector units may
-- break the other way: its label is not printed)
SELECT id, descriptor, CASE WHEN (d).level = 'low' THEN '(low: a guess)' ELSE (d).label END AS label,
       (d).confidence >= (SELECT high FROM confidence_info()) AS confident, (d).level
FROM (SELECT id, descriptor, classify_transaction_detail(descriptor) AS d FROM named_txns) s ORDER BY id;
SELECT count(*) AS paths_disagree FROM named_txns t
JOIN classify_batch(ARRAY(SELECT descriptor FROM named_txns ORDER BY id)) b ON b.ordinality = t.id
WHERE b.level IS DISTINCT FROM (classify_transaction_detail(t.descriptor)).level
   OR t.txclass_level IS DISTINCT FROM b.level OR t.txclass_label IS DISTINCT FROM b.label;
RESET txclass.min_confidence;
RESET txclass.min_level;
-- by default (0.6.0: txclass.min_level = high) what is held at medium is withheld: label NULL,
-- source abstain, its level and confidence kept; the named answers are served
SELECT id, descriptor, CASE WHEN (d).level = 'low' THEN '(low: a guess)' ELSE coalesce((d).label, '-') END AS label,
       (d).source, (d).level
FROM (SELECT id, descriptor, classify_transaction_detail(descriptor) AS d FROM named_txns) s ORDER BY id;
-- asking for medium serves them again (the same cached answers: the policy is applied at answer time)
SET txclass.min_level = medium;
SELECT count(label) FILTER (WHERE level = 'medium') AS medium_served
FROM classify_batch(ARRAY(SELECT descriptor FROM named_txns ORDER BY id));
SET txclass.min_level = very_high;
SELECT count(label) FILTER (WHERE level = 'high') AS high_served, count(label) FILTER (WHERE level = 'very_high') > 0 AS very_high_served
FROM classify_batch(ARRAY(SELECT descriptor FROM named_txns ORDER BY id));
SET txclass.min_level = certain;   -- not a level
RESET txclass.min_level;
SELECT detach('named_txns');
-- txclass.min_confidence = 0 with min_level = low: always answer; 1: abstain on every model answer (rules still answer)
SET txclass.min_confidence = 0;
SET txclass.min_level = low;
SELECT min_confidence FROM confidence_info();
SELECT count(*) FILTER (WHERE source = 'abstain') AS abstained, count(label) AS answered
FROM classify_batch(ARRAY(SELECT descriptor FROM conf_txns ORDER BY id));
SET txclass.min_confidence = 1;
SELECT count(*) FILTER (WHERE source = 'abstain') AS abstained, count(label) AS answered
FROM classify_batch(ARRAY(SELECT descriptor FROM conf_txns ORDER BY id));
INSERT INTO rules (pattern, label, category, note) VALUES ('^tesco stores', 'Tesco', 'Groceries', 'confidence test');
SELECT (d).label, (d).source, (d).level, (d).confidence FROM (SELECT classify_transaction_detail('TESCO STORES 6292') AS d) s;
DELETE FROM rules WHERE note = 'confidence test';
SET txclass.min_confidence = 2;   -- out of range
RESET txclass.min_confidence;
-- the cache holds confidences, not decisions: a changed floor changes the next answer
SET txclass.min_confidence = 0;
SELECT classify_transaction('EYRE & ELLISTON LTD') IS NOT NULL AS answered_at_0;
RESET txclass.min_confidence;
RESET txclass.min_level;
SELECT classify_transaction('EYRE & ELLISTON LTD') IS NULL AS abstains_by_default;
-- a new temperature is a new model identity: its answers never come from the other's cache entries
SELECT confidence AS v2_conf FROM classify_transaction_detail('NETFLIX.COM 866-579-7172 CA') \gset
SET txclass.model = '/tmp/txclass-fixtures/recalibrated';
SELECT temperature > 2 AS hotter FROM confidence_info();
SELECT d.source, d.confidence < :v2_conf AS flatter_than_v2,
       abs(d.confidence - (SELECT confidence FROM classify_topk('NETFLIX.COM 866-579-7172 CA', 1))) < 1e-6 AS topk_agrees
FROM classify_transaction_detail('NETFLIX.COM 866-579-7172 CA') d;
-- calibration entries that make no sense are refused by name
SET txclass.model = '/tmp/txclass-fixtures/bad_temperature';
SELECT classify_transaction('NETFLIX');
SET txclass.model = '/tmp/txclass-fixtures/bad_levels';
SELECT classify_transaction('NETFLIX');
SET txclass.model = 'txclass-merchants-v3';
-- the trigger writes the level; an abstention keeps confidence, level and model, label NULL
CREATE TABLE conf_enriched (id bigint PRIMARY KEY, descriptor text);
SELECT label_column, level_column FROM attach('conf_enriched', 'descriptor');
INSERT INTO conf_enriched SELECT id, descriptor FROM conf_txns;
SELECT id, txclass_label, txclass_level, txclass_confidence IS NOT NULL AS has_conf, txclass_model IS NOT NULL AS has_model
FROM conf_enriched ORDER BY id;
-- the same as classify_batch, row for row
SELECT count(*) AS trigger_vs_batch FROM conf_enriched e
JOIN classify_batch(ARRAY(SELECT descriptor FROM conf_enriched ORDER BY id)) b ON b.ordinality = e.id
WHERE e.txclass_label IS DISTINCT FROM b.label OR e.txclass_level IS DISTINCT FROM b.level;
-- an abstention is answered: enrichment_status counts it, and backfill leaves it alone (the one
-- row it reads is the empty descriptor, which has nothing to classify)
SELECT rows, enriched, without_outputs FROM enrichment_status('conf_enriched');
SET client_min_messages = warning;   -- backfill's NOTICEs carry timings
CALL backfill('conf_enriched');
RESET client_min_messages;
SELECT rows_done FROM backfill_progress WHERE relid = 'conf_enriched'::regclass;
-- a table attached without a level column keeps working
CREATE TABLE conf_nolevel (id bigint PRIMARY KEY, descriptor text);
SELECT level_column IS NULL AS no_level FROM attach('conf_nolevel', 'descriptor', level_column => NULL);
INSERT INTO conf_nolevel VALUES (1, 'TESCO STORES 6292'), (2, 'EYRE & ELLISTON LTD');
SELECT id, txclass_label, txclass_confidence IS NOT NULL AS has_conf FROM conf_nolevel ORDER BY id;
SELECT count(*) AS level_columns FROM pg_attribute WHERE attrelid = 'conf_nolevel'::regclass AND attname = 'txclass_level';

-- ---- the labeling loop ------------------------------------------------------------------
-- what to label next: new merchants first, then traffic x uncertainty; labeled ones drop out
INSERT INTO conf_enriched SELECT 100 + g, 'EYRE & ELLISTON LTD' FROM generate_series(1, 5) g;
-- (rows first; equal rows by descriptor, since their uncertainty can be a near tie)
SELECT descriptor, rows, predicted IS NULL AS abstained, new_merchant, priority > 0 AS uncertain
FROM review_queue('conf_enriched', 3) ORDER BY rows DESC, descriptor;
SELECT add_labels(ARRAY['EYRE & ELLISTON LTD', 'eyre  elliston ltd', 'BUCKS RECYCLING LTD'],
                  ARRAY['Eyre & Elliston', 'Eyre & Elliston (electrical)', 'Bucks Recycling'],
                  ARRAY['Electrical', 'Electrical', NULL], note => 'regress') AS written;
-- one label per normalized text (the last one given wins), stamped by the database
SELECT descriptor, normalized, label, category, labeled_by = current_user AS stamped, source FROM labels ORDER BY id;
SELECT count(*) AS still_queued FROM review_queue('conf_enriched', 50) WHERE normalized IN (SELECT normalized FROM labels);
-- 0.6.0: a label is served at once for its normalized text (after the rules, before the cache
-- and the model): by every path, with its category, source 'label', at the top level
SELECT model FROM labels ORDER BY id LIMIT 1;   -- stamped with the serving model's name
SELECT (d).label, (d).category, (d).source, (d).level, (d).confidence, (d).rule_id
FROM (SELECT classify_transaction_detail('Eyre & Elliston Ltd.') AS d) s;
SELECT classify_transaction('EYRE  ELLISTON LTD') AS other_text, classify_transaction('EYRE & ELLISTON LIMITED') IS NOT DISTINCT FROM 'Eyre & Elliston' AS longer_text_labeled;
SELECT b.label, b.source FROM classify_batch(ARRAY['EYRE & ELLISTON LTD', 'bucks recycling ltd']) b ORDER BY b.ordinality;
SELECT inference FROM model_info();   -- preloaded: the shared workers; and in a backend session of its own
SET txclass.inference = backend;
SELECT inference, classify_transaction('EYRE & ELLISTON LTD') AS backend_mode FROM model_info();
RESET txclass.inference;
INSERT INTO conf_enriched VALUES (200, 'EYRE & ELLISTON LTD');
SELECT txclass_label, txclass_category, txclass_level, txclass_confidence FROM conf_enriched WHERE id = 200;
-- a label given again replaces the one served, from the next statement on
SELECT add_labels(ARRAY['bucks recycling ltd'], ARRAY['Bucks Recycling Ltd'], ARRAY['Professional Services']) AS written;
SELECT classify_transaction('BUCKS RECYCLING LTD') AS relabeled, (classify_transaction_detail('BUCKS RECYCLING LTD')).category;
-- served by the model it was given against and its retrains, not by another model
SELECT name, retrain_of FROM register_model('conf-retrain', 'txclass-merchants-v3', retrain_of => 'txclass-merchants-v3');
SELECT register_model('conf-self', 'txclass-merchants-v3', retrain_of => 'conf-self');
-- evaluate measures the model alone, or with the labels that apply to it answering first
SELECT e->>'labels' AS labels, e->>'labels_answered' AS labels_answered, (e->>'correct')::int AS correct
FROM evaluate('conf-retrain', 'SELECT descriptor, label FROM txclass.labels', store => false) e;
SELECT e->>'labels' AS labels, e->>'labels_answered' AS labels_answered, (e->>'correct')::int AS correct
FROM evaluate('conf-retrain', 'SELECT descriptor, label FROM txclass.labels', store => false, labels => true) e;
SELECT name FROM register_model('conf-other', 'txclass-merchants-v3');
SELECT e->>'labels_answered' AS other_model_labels_answered
FROM evaluate('conf-other', 'SELECT descriptor, label FROM txclass.labels', store => false, labels => true) e;
RESET txclass.model;   -- the registry's active model from here
SELECT model, action FROM activate_model('conf-other');
SELECT classify_transaction('EYRE & ELLISTON LTD') IS DISTINCT FROM 'Eyre & Elliston' AS not_served_by_another_model;
SELECT model, action FROM activate_model('conf-retrain');
SELECT classify_transaction('EYRE & ELLISTON LTD') AS served_by_its_retrain;
SET txclass.model = 'txclass-merchants-v3';
-- labels are a gold set at once
SET client_min_messages = warning;   -- the NOTICEs name the registered models with the same files
SELECT name IS NOT NULL AS registered FROM register_model('conf-v2', 'txclass-merchants-v3');
RESET client_min_messages;
SELECT e->>'rows' AS rows, e->'levels'->'thresholds'->>'fitted' AS fitted,
       jsonb_array_length(e->'levels'->'per_level') AS levels, (e->'levels'->>'answered')::int <= 2 AS answered_ok
FROM evaluate('conf-v2', 'SELECT descriptor, label FROM txclass.labels', store => false) e;
-- and rules for an immediate fix
SELECT add_labels(ARRAY['EYRE & ELLISTON LTD'], ARRAY['Eyre & Elliston'], as_rules => true) AS written;
SELECT pattern, label, priority FROM rules WHERE note = 'txclass label';
SELECT (d).label, (d).source FROM (SELECT classify_transaction_detail('Eyre & Elliston Ltd.') AS d) s;
-- a label given again replaces its rule
SELECT add_labels(ARRAY['eyre & elliston ltd'], ARRAY['Eyre and Elliston'], as_rules => true) AS written;
SELECT count(*), min(label) FROM rules WHERE note = 'txclass label';
-- bad input: a clear error, nothing added
SELECT add_labels(ARRAY['A', 'B'], ARRAY['x']);
SELECT add_labels(ARRAY['A'], ARRAY['']);
SELECT add_labels(ARRAY['...'], ARRAY['x']);
SELECT review_queue('conf_enriched', 0);
SELECT review_queue('pg_class', 5);
SELECT count(*) AS labels FROM labels;
-- privileges: a labeler adds labels, not rules; a plain user reads them
CREATE ROLE conf_labeler LOGIN IN ROLE txclass_labeler;
CREATE ROLE conf_plain LOGIN;
SET ROLE conf_labeler;
SELECT add_labels(ARRAY['COOPER MOBILE SERV'], ARRAY['Cooper Mobile Services']) AS written;
-- what a labeler labels is served at once: no rule, no administrator
SELECT (d).label, (d).source FROM (SELECT classify_transaction_detail('cooper mobile serv') AS d) s;
SELECT add_labels(ARRAY['HOTJAR'], ARRAY['Hotjar'], as_rules => true);
INSERT INTO rules (pattern, label) VALUES ('^hotjar$', 'Hotjar');
SELECT register_model('labeler-model', 'txclass-merchants-v3');
RESET ROLE;
SET ROLE conf_plain;
SELECT count(*) > 0 AS can_read FROM labels;
SELECT add_labels(ARRAY['HOTJAR'], ARRAY['Hotjar']);
INSERT INTO labels (descriptor, normalized, label, labeled_by, labeled_at) VALUES ('HOTJAR', 'hotjar', 'Hotjar', 'me', now());
RESET ROLE;
SELECT descriptor, labeled_by FROM labels WHERE descriptor = 'COOPER MOBILE SERV';
DROP ROLE conf_labeler;
DROP ROLE conf_plain;
DELETE FROM rules WHERE note = 'txclass label';
SELECT detach('conf_enriched'), detach('conf_nolevel');
DROP TABLE conf_txns, conf_enriched, conf_nolevel;
RESET txclass.model;
