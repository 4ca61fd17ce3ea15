-- Write-path enrichment: attach, triggers on insert and on update of the descriptor only,
-- batched misses, the failure path, detach.
SET search_path = public, txclass;
CREATE TABLE card_txns (id bigserial PRIMARY KEY, descriptor text, amount numeric, note text);
SELECT relid, descriptor_column, label_column, key_column, on_error FROM attach('card_txns', 'descriptor');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'card_txns'::regclass AND attnum > 0 ORDER BY attnum;
-- one row: outputs at once
INSERT INTO card_txns (descriptor, amount) VALUES ('STARBUCKS STORE 01234 SEATTLE WA', 4.5);
SELECT id, txclass_label, txclass_category, txclass_confidence > 0.5 AS confident, txclass_model LIKE 'v1@%' AS model
FROM card_txns;
-- multi-row insert, NULL and empty descriptors, repeats
INSERT INTO card_txns (descriptor) VALUES ('TESCO STORES 6292'), (NULL), (''), ('TESCO STORES 1111'),
    ('UBER *TRIP HELP.UBER.COM'), ('SHELL OIL 57444 HOUSTON TX'), ('TESCO STORES 6292');
SELECT id, descriptor, txclass_label, txclass_category FROM card_txns ORDER BY id;
-- every enriched row equals the function's answer
SELECT count(*) AS disagreements FROM card_txns t
WHERE t.txclass_label IS DISTINCT FROM classify_transaction(t.descriptor);
-- update of another column: no re-classification (outputs written by hand stay)
UPDATE card_txns SET txclass_label = 'hand-set' WHERE id = 1;
UPDATE card_txns SET amount = 5, note = 'edited' WHERE id = 1;
SELECT txclass_label FROM card_txns WHERE id = 1;
-- update of the descriptor to the same value: kept; to a new value: re-classified
UPDATE card_txns SET descriptor = descriptor WHERE id = 1;
SELECT txclass_label FROM card_txns WHERE id = 1;
UPDATE card_txns SET descriptor = 'NETFLIX.COM 866-579-7172 CA' WHERE id = 1;
SELECT txclass_label, txclass_category FROM card_txns WHERE id = 1;
-- rules apply in the write path too
INSERT INTO rules (pattern, label, category, note) VALUES ('^oxford city council', 'Oxford City Council', 'Government', 'enrich test');
INSERT INTO card_txns (descriptor) VALUES ('OXFORD CITY COUNCIL PARKING');
SELECT txclass_label, txclass_category, txclass_confidence FROM card_txns WHERE descriptor LIKE 'OXFORD%';
DELETE FROM rules WHERE note = 'enrich test';
-- a single-row INSERT (the OLTP pattern): its miss is classified in place and the row written
-- once, outputs included (no statement batch, no UPDATE of the row)
SELECT row_by_row AS rbr_before, batched AS batched_before, batches AS batches_before FROM enrichment_stats \gset
BEGIN;
SELECT pg_stat_get_xact_tuples_inserted('card_txns'::regclass) AS ins_before, pg_stat_get_xact_tuples_updated('card_txns'::regclass) AS upd_before \gset
INSERT INTO card_txns (descriptor) VALUES ('CAFE NERO ONE ROW ' || translate(md5('one row'), '0123456789', 'ghijklmnop'));
SELECT pg_stat_get_xact_tuples_inserted('card_txns'::regclass) - :ins_before AS inserted,
       pg_stat_get_xact_tuples_updated('card_txns'::regclass) - :upd_before AS updated;
COMMIT;
SELECT row_by_row - :rbr_before AS row_by_row, batched - :batched_before AS batched, batches - :batches_before AS batches FROM enrichment_stats;
SELECT txclass_label IS NOT DISTINCT FROM classify_transaction(descriptor) AS same, txclass_model IS NOT NULL AS enriched
FROM card_txns WHERE descriptor LIKE 'CAFE NERO ONE ROW %';
-- misses are classified per statement in batches: 500 new distinct descriptors, one statement
-- (its first miss in place, the 499 others in one batch)
SELECT batched AS batched_before, batches AS batches_before FROM enrichment_stats \gset
INSERT INTO card_txns (descriptor)
SELECT b || ' ' || translate(md5(g::text), '0123456789', 'ghijklmnop')
FROM generate_series(1, 500) g, LATERAL (SELECT (ARRAY['STARBUCKS STORE','TESCO STORES','UBER TRIP','SHELL OIL'])[1 + g % 4]) x(b);
SELECT batched - :batched_before AS batched, batches - :batches_before AS batches FROM enrichment_stats;
SELECT count(*) FILTER (WHERE txclass_label IS NULL) AS without_label, count(*) AS rows FROM card_txns WHERE id > 9;
SELECT count(*) AS disagreements FROM card_txns t
WHERE t.txclass_label IS DISTINCT FROM classify_transaction(t.descriptor) AND descriptor NOT LIKE 'OXFORD%';
-- an insert that fails after the rows were queued leaves nothing behind
BEGIN;
SAVEPOINT s;
INSERT INTO card_txns (descriptor) VALUES ('STARBUCKS NEW ONE XQ'), (repeat('x', 10)), (NULL::text || 1/0);
ROLLBACK TO SAVEPOINT s;
INSERT INTO card_txns (descriptor) VALUES ('WALMART SUPERCENTER QQ');
COMMIT;
SELECT descriptor, txclass_label FROM card_txns WHERE descriptor LIKE 'WALMART%' OR descriptor LIKE 'STARBUCKS NEW%';
-- failure path: a broken model keeps the row, NULL outputs, counted, one WARNING per statement
SELECT failed AS failed_before FROM enrichment_stats \gset
SET txclass.model = '/tmp/txclass-fixtures/corrupt_onnx';
INSERT INTO card_txns (descriptor) VALUES ('STARBUCKS 1 FAIL'), ('STARBUCKS 2 FAIL'), ('STARBUCKS 3 FAIL');
SELECT count(*) AS kept, count(txclass_label) AS labelled FROM card_txns WHERE descriptor LIKE '%FAIL';
SELECT failed - :failed_before AS failed FROM enrichment_stats;
SELECT rows, enriched, without_outputs FROM enrichment_status('card_txns');
-- strict: the statement fails instead, nothing written
SELECT on_error FROM attach('card_txns', 'descriptor', on_error => 'error');
INSERT INTO card_txns (descriptor) VALUES ('STARBUCKS 4 STRICT');
SELECT count(*) FROM card_txns WHERE descriptor LIKE '%STRICT';
RESET txclass.model;
SELECT on_error FROM attach('card_txns', 'descriptor');
-- attach refuses what it cannot serve
SELECT attach('card_txns', 'nope');
SELECT attach('card_txns', 'amount');
CREATE TABLE bad_types (id int PRIMARY KEY, d text, txclass_label integer);
SELECT attach('bad_types', 'd');
SELECT attach('card_txns', 'descriptor', on_error => 'ignore');
-- no primary key: row by row, with a NOTICE
CREATE TABLE nokey (d text);
SELECT key_column FROM attach('nokey', 'd');
INSERT INTO nokey VALUES ('STARBUCKS STORE 77'), ('UBER TRIP ZZ QQ');
SELECT d, txclass_label FROM nokey ORDER BY d;
-- a role that may only INSERT: batched misses are written as the table owner
CREATE ROLE txclass_inserter;
GRANT INSERT, SELECT ON card_txns TO txclass_inserter;
GRANT USAGE ON SEQUENCE card_txns_id_seq TO txclass_inserter;
SET ROLE txclass_inserter;
INSERT INTO card_txns (descriptor) VALUES ('STARBUCKS INSERT ONLY QX'), ('TESCO STORES INSERT ONLY QY');
UPDATE card_txns SET txclass_label = 'x' WHERE descriptor LIKE '%INSERT ONLY%';
RESET ROLE;
SELECT descriptor, txclass_label FROM card_txns WHERE descriptor LIKE '%INSERT ONLY%' ORDER BY 1;
DROP OWNED BY txclass_inserter;
DROP ROLE txclass_inserter;
-- detach: triggers and record gone, data kept
SELECT detach('card_txns');
SELECT count(*) FROM monitored WHERE relid = 'card_txns'::regclass;
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'card_txns'::regclass AND NOT tgisinternal;
INSERT INTO card_txns (descriptor) VALUES ('STARBUCKS AFTER DETACH');
SELECT txclass_label FROM card_txns WHERE descriptor = 'STARBUCKS AFTER DETACH';
SELECT count(txclass_label) > 500 AS data_kept FROM card_txns;
-- backfill fills what detach left, in batches
SELECT relid FROM attach('card_txns', 'descriptor');
SET client_min_messages = warning;   -- the per-batch NOTICEs carry timings
CALL backfill('card_txns', batch_size => 200);
RESET client_min_messages;
SELECT status, rows_done, batches, last_key IS NOT NULL AS has_key FROM backfill_progress WHERE relid = 'card_txns'::regclass;
SELECT txclass_label FROM card_txns WHERE descriptor IN ('STARBUCKS AFTER DETACH', 'STARBUCKS 1 FAIL');
SELECT without_outputs FROM enrichment_status('card_txns');
-- reclassify: rows from another model than the active one are classified again
UPDATE card_txns SET txclass_model = 'older-model@000000000000', txclass_label = 'stale' WHERE id <= 5;
SET client_min_messages = warning;
CALL backfill('card_txns', reclassify => false);
SELECT count(*) AS still_stale FROM card_txns WHERE txclass_label = 'stale';
CALL backfill('card_txns', batch_size => 2, reclassify => true);
RESET client_min_messages;
SELECT count(*) AS still_stale FROM card_txns WHERE txclass_label = 'stale';
SELECT count(*) AS from_older_model FROM card_txns WHERE txclass_model LIKE 'older-model%';
-- a plain user cannot attach a table it does not own
CREATE ROLE txclass_enrich_plain;
SET ROLE txclass_enrich_plain;
SELECT attach('card_txns', 'descriptor');
RESET ROLE;
DROP ROLE txclass_enrich_plain;
-- DDL after attach never makes a write fail: the table renamed or moved keeps its enrichment
-- (the statement batch's UPDATE names the table as it is called now); a renamed or dropped
-- column gives one WARNING per statement and the row as written
CREATE TABLE ddl_t (id int PRIMARY KEY, d text);
SELECT relid FROM attach('ddl_t', 'd');
ALTER TABLE ddl_t RENAME TO ddl_renamed;
INSERT INTO ddl_renamed VALUES (1, 'STARBUCKS STORE after rename one'), (2, 'TESCO STORES after rename two');
SELECT id, txclass_label IS NOT NULL AS labelled FROM ddl_renamed ORDER BY id;
CREATE SCHEMA ddl_s2;
ALTER TABLE ddl_renamed SET SCHEMA ddl_s2;
INSERT INTO ddl_s2.ddl_renamed VALUES (3, 'SHELL OIL after move three');
SELECT id, txclass_label IS NOT NULL AS labelled FROM ddl_s2.ddl_renamed ORDER BY id;
SELECT relid FROM monitored WHERE relid = 'ddl_s2.ddl_renamed'::regclass;
-- a renamed descriptor or output column is followed (txclass._on_ddl): no re-attach, no WARNING
ALTER TABLE ddl_s2.ddl_renamed RENAME COLUMN d TO memo;
ALTER TABLE ddl_s2.ddl_renamed RENAME COLUMN txclass_label TO merchant;
SELECT descriptor_column, label_column FROM monitored WHERE relid = 'ddl_s2.ddl_renamed'::regclass;
INSERT INTO ddl_s2.ddl_renamed VALUES (4, 'UBER TRIP after column rename four');
SELECT id, merchant IS NOT NULL AS labelled, merchant IS NOT DISTINCT FROM classify_transaction(memo) AS same
FROM ddl_s2.ddl_renamed WHERE id = 4;
ALTER TABLE ddl_s2.ddl_renamed RENAME COLUMN memo TO d;
ALTER TABLE ddl_s2.ddl_renamed RENAME COLUMN merchant TO txclass_label;
ALTER TABLE ddl_s2.ddl_renamed DROP COLUMN txclass_category;
INSERT INTO ddl_s2.ddl_renamed VALUES (5, 'NETFLIX.COM after drop five'), (6, 'NETFLIX.COM after drop six');
ALTER TABLE ddl_s2.ddl_renamed ADD COLUMN txclass_category int;
INSERT INTO ddl_s2.ddl_renamed VALUES (7, 'AMZN MKTP after type change seven');
SELECT id, d, txclass_label IS NOT NULL AS labelled FROM ddl_s2.ddl_renamed ORDER BY id;
SELECT rows, enriched, problems FROM enrichment_status('ddl_s2.ddl_renamed');
-- re-attaching with the columns as they are now fixes it
ALTER TABLE ddl_s2.ddl_renamed DROP COLUMN txclass_category;
SELECT relid FROM attach('ddl_s2.ddl_renamed', 'd');
INSERT INTO ddl_s2.ddl_renamed VALUES (8, 'STARBUCKS STORE after re-attach eight');
SELECT id, txclass_label IS NOT NULL AS labelled FROM ddl_s2.ddl_renamed WHERE id = 8;
SELECT rows, enriched, without_outputs, problems FROM enrichment_status('ddl_s2.ddl_renamed');
SELECT detach('ddl_s2.ddl_renamed');
DROP SCHEMA ddl_s2 CASCADE;

-- a table that gains a primary key after attach batches its misses from then on
CREATE TABLE latekey (id int, d text);
SET client_min_messages = warning;
SELECT key_columns FROM attach('latekey', 'd');
RESET client_min_messages;
ALTER TABLE latekey ADD PRIMARY KEY (id);
SELECT key_columns, key_column FROM monitored WHERE relid = 'latekey'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'latekey'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT batches AS batches_before FROM enrichment_stats \gset
INSERT INTO latekey VALUES (1, 'STARBUCKS LATE KEY ONE QQ'), (2, 'TESCO STORES LATE KEY TWO QQ');
SELECT batches - :batches_before AS batches FROM enrichment_stats;
SELECT count(*) FILTER (WHERE txclass_label IS NOT DISTINCT FROM classify_transaction(d) AND txclass_model IS NOT NULL) AS same
FROM latekey;
-- a dropped attached table is detached: its record goes with it
DROP TABLE latekey;
SELECT count(*) AS left_behind FROM monitored WHERE relid::oid NOT IN (SELECT oid FROM pg_class);

-- Partitioned tables: attach on the parent covers every partition, present and future; the
-- composite primary key (id, posted) batches misses per statement (after each statement's first)
CREATE TABLE part_txns (id bigint, posted date, descriptor text, PRIMARY KEY (id, posted)) PARTITION BY RANGE (posted);
CREATE TABLE part_txns_01 PARTITION OF part_txns FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE part_txns_02 PARTITION OF part_txns FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
SELECT key_column, key_columns FROM attach('part_txns', 'descriptor', time_column => 'posted');
SELECT tgrelid::regclass AS rel, tgname, tgparentid <> 0 AS cloned FROM pg_trigger
WHERE tgrelid IN (SELECT relid FROM pg_partition_tree('part_txns')) AND NOT tgisinternal ORDER BY 1, 2;
SELECT batched AS batched_before, batches AS batches_before FROM enrichment_stats \gset
-- into the parent, rows of both partitions in one statement
INSERT INTO part_txns
SELECT g, date '2026-01-01' + (g % 59), b || ' PART ' || translate(md5(g::text), '0123456789', 'ghijklmnop')
FROM generate_series(1, 300) g, LATERAL (SELECT (ARRAY['STARBUCKS STORE','TESCO STORES','UBER TRIP','SHELL OIL'])[1 + g % 4]) x(b);
-- straight into a partition
INSERT INTO part_txns_02 VALUES (1001, '2026-02-10', 'NETFLIX.COM PARTITION DIRECT QQ'), (1002, '2026-02-11', 'SPOTIFY PARTITION DIRECT QQ');
SELECT batched - :batched_before AS batched, batches - :batches_before AS batches FROM enrichment_stats;
SELECT tableoid::regclass AS part, count(*) AS rows, count(txclass_model) AS enriched,
       count(*) FILTER (WHERE txclass_label IS DISTINCT FROM classify_transaction(descriptor)) AS differ
FROM part_txns GROUP BY 1 ORDER BY 1;
-- a partition created later, and a table attached as a partition: both enriched, batched
CREATE TABLE part_txns_03 PARTITION OF part_txns FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
CREATE TABLE part_txns_04 (id bigint NOT NULL, posted date NOT NULL, descriptor text, txclass_label text, txclass_category text,
    txclass_confidence real, txclass_model text, txclass_level text);
ALTER TABLE part_txns ATTACH PARTITION part_txns_04 FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
SELECT tgrelid::regclass AS rel, tgname FROM pg_trigger
WHERE tgrelid IN ('part_txns_03'::regclass, 'part_txns_04'::regclass) AND NOT tgisinternal ORDER BY 1, 2;
SELECT batches AS batches_before FROM enrichment_stats \gset
INSERT INTO part_txns VALUES (2001, '2026-03-05', 'STARBUCKS MARCH NEW QQ'), (2002, '2026-04-05', 'TESCO STORES APRIL NEW QQ');
INSERT INTO part_txns_03 VALUES (2003, '2026-03-06', 'UBER TRIP MARCH DIRECT QQ');
SELECT batches - :batches_before AS batches FROM enrichment_stats;
SELECT id, txclass_model IS NOT NULL AS enriched, txclass_label IS NOT DISTINCT FROM classify_transaction(descriptor) AS same
FROM part_txns WHERE id > 2000 ORDER BY id;
-- a detached partition keeps its rows and loses txclass's triggers
ALTER TABLE part_txns DETACH PARTITION part_txns_04;
SELECT count(*) AS txclass_triggers FROM pg_trigger WHERE tgrelid = 'part_txns_04'::regclass AND tgname LIKE 'txclass%';
INSERT INTO part_txns_04 VALUES (3001, '2026-04-09', 'STARBUCKS DETACHED QQ');
SELECT count(txclass_model) AS enriched FROM part_txns_04 WHERE id = 3001;
-- renaming the parent's descriptor column renames it in every partition: followed
ALTER TABLE part_txns RENAME COLUMN descriptor TO memo;
INSERT INTO part_txns VALUES (4001, '2026-01-20', 'SHELL OIL AFTER RENAME QQ');
SELECT txclass_model IS NOT NULL AS enriched FROM part_txns WHERE id = 4001;
-- backfill walks each partition in key order (composite key), resumably
UPDATE part_txns SET txclass_label = NULL, txclass_category = NULL, txclass_confidence = NULL, txclass_model = NULL, txclass_level = NULL
WHERE id % 3 = 0;
SET client_min_messages = warning;
CALL backfill('part_txns', batch_size => 40);
RESET client_min_messages;
SELECT status, rows_done, batches > 3 AS several_batches, (last_key::jsonb->'done') IS NOT NULL AS per_partition
FROM backfill_progress WHERE relid = 'part_txns'::regclass;
SELECT count(*) - count(txclass_model) AS without_outputs,
       count(*) FILTER (WHERE txclass_label IS DISTINCT FROM classify_transaction(memo)) AS differ FROM part_txns;
-- drift folds a partitioned table in composite-key order
SELECT refresh_drift('part_txns') AS rows_read;
SELECT refresh_drift('part_txns') AS nothing_new;
SELECT sum(rows) AS counted FROM drift_counts WHERE relid = 'part_txns'::regclass;
SELECT detach('part_txns');
SELECT count(*) AS txclass_triggers FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM pg_partition_tree('part_txns')) AND tgname LIKE 'txclass%';
DROP TABLE part_txns, part_txns_04;

-- a table without any key: backfill walks it by ctid ranges
CREATE TABLE heap_only (d text);
INSERT INTO heap_only SELECT 'STARBUCKS HEAP ' || g FROM generate_series(1, 500) g;
SET client_min_messages = warning;
SELECT key_columns FROM attach('heap_only', 'd');
CALL backfill('heap_only', batch_size => 100);
RESET client_min_messages;
SELECT status, rows_done, batches > 1 AS several_batches FROM backfill_progress WHERE relid = 'heap_only'::regclass;
SELECT count(*) AS rows, count(txclass_model) AS enriched FROM heap_only;
SELECT detach('heap_only');
DROP TABLE heap_only;
