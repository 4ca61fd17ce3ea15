#!/usr/bin/env bash
# The demo: set-up if needed, a throwaway cluster as the postgres OS user, CREATE EXTENSION,
# load the real Oxford City Council card descriptors, classify them, print, stop the cluster.
source "$(dirname "$0")/common.sh"
DATA="${TXCLASS_DATA:-$ROOT/../shared/data/oxford-pcard}"
PORT="${TXCLASS_DEMO_PORT:-54331}"
[ -d "$DATA" ] || { echo "Oxford data not found at $DATA (set TXCLASS_DATA)" >&2; exit 1; }
bash "$ROOT/scripts/setup.sh"
trap 'bash "$ROOT/scripts/cluster.sh" stop demo' EXIT
conn="$(bash "$ROOT/scripts/cluster.sh" start demo "$PORT")"
tsv="$BUILD/oxford.tsv"
rows="$(python3 "$ROOT/scripts/oxford_tsv.py" "$DATA" "$tsv")"
log "cluster up ($conn); loading $rows Oxford descriptors"
# shellcheck disable=SC2086
psql $conn -d postgres -X -q -v ON_ERROR_STOP=1 <<SQL
\pset footer off
CREATE EXTENSION txclass;
SET search_path = public, txclass;   -- the one-line set-up that makes the unqualified names work
CREATE TABLE txns (id bigserial PRIMARY KEY, month_file text, txn_date date, descriptor text, amount numeric, council_category text);
\copy txns (month_file, txn_date, descriptor, amount, council_category) FROM '$tsv'
\echo
\echo '== the model this backend loaded (lazily, at first use) =='
SELECT model, labels, execution_provider, round(load_ms::numeric, 1) AS load_ms FROM model_info();
\echo '== classify_transaction() per row, unqualified thanks to search_path =='
\timing on
CREATE TABLE classified AS
  SELECT t.id, t.descriptor, d.label, d.category, round(d.confidence::numeric, 3) AS confidence, d.level, d.source
  FROM txns t, LATERAL classify_transaction_detail(t.descriptor) d;
\timing off
\echo '== what the model promises: calibrated confidence, levels from held-out precision, and its floor =='
SELECT model, temperature, very_high, high, medium, min_confidence FROM confidence_info();
\echo '== 20 random distinct real descriptors: brands it knows are answered, local suppliers abstain (label NULL) =='
SELECT descriptor, coalesce(label, '(abstains)') AS label, category, confidence, level
FROM (SELECT DISTINCT ON (descriptor) * FROM classified WHERE descriptor <> '') d ORDER BY md5(descriptor) LIMIT 20;
\echo '== how sure is the model? (a synthetic-data model meets real council suppliers; only high and very_high are labels:'
\echo '   a medium answer names no brand the descriptor carries, so it is withheld, an abstention) =='
SELECT coalesce(level, '(empty descriptor)') AS level, count(*) AS rows, count(label) AS answered,
       count(*) FILTER (WHERE source = 'abstain') AS abstained
FROM classified GROUP BY level
ORDER BY array_position(ARRAY['very_high', 'high', 'medium', 'low'], level) NULLS LAST;
\echo '== what the council spends its cards on, by predicted category (answered rows only) =='
SELECT category, count(*) AS txns, round(sum(t.amount)) AS pounds, round(avg(confidence), 2) AS mean_conf
FROM classified c JOIN txns t USING (id) WHERE c.label IS NOT NULL GROUP BY category ORDER BY pounds DESC NULLS LAST LIMIT 15;
\echo '== what to label next: the most traffic x uncertainty (txclass.review_queue on an attached table) =='
CREATE TABLE card_txns (id bigint PRIMARY KEY, txn_date date, descriptor text, amount numeric);
DO \$\$ BEGIN PERFORM txclass.attach('card_txns', 'descriptor', time_column => 'txn_date'); END \$\$;
INSERT INTO card_txns SELECT id, txn_date, descriptor, amount FROM txns;
SELECT descriptor, rows, round(mean_confidence::numeric, 3) AS mean_conf, coalesce(predicted, '(abstains)') AS predicted, level
FROM review_queue('card_txns', 10);
\echo '== a labeler labels two of them: served at once for those texts (source label), by the trigger too =='
SELECT add_labels(ARRAY['EYRE & ELLISTON LTD', 'EXECUTIVE SECURITY'], ARRAY['Eyre & Elliston', 'Executive Security'],
                  ARRAY['Home Improvement', 'Professional Services']) AS labelled;
INSERT INTO card_txns VALUES (1000001, DATE '2018-03-01', 'EYRE & ELLISTON LTD', 12.50);
SELECT descriptor, txclass_label, txclass_category, txclass_level FROM card_txns WHERE id = 1000001;
SELECT d.label, d.category, d.source, d.level FROM classify_transaction_detail('Executive Security') d;
\echo '== the whole table through classify_batch() in one call =='
\timing on
SELECT count(*) AS rows, count(label) AS labelled, count(*) FILTER (WHERE source = 'abstain') AS abstained,
       count(DISTINCT label) AS distinct_labels
FROM classify_batch(ARRAY(SELECT descriptor FROM txns ORDER BY id));
\timing off
\echo '== the shared result cache: repeated descriptors never reach the model twice =='
SELECT shared, capacity, entries, hits, misses, round(hit_ratio::numeric, 3) AS hit_ratio, evictions FROM cache_stats;
\echo '== top-3 for one descriptor =='
SELECT * FROM classify_topk('AMAZON UK MARKETPLACE', 3);
SQL
log "demo done; stopping the cluster"
