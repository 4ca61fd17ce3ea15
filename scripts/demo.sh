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
  SELECT t.id, t.descriptor, d.label, d.category, round(d.confidence::numeric, 3) AS confidence
  FROM txns t, LATERAL classify_transaction_detail(t.descriptor) d;
\timing off
\echo '== 20 random distinct real descriptors =='
SELECT descriptor, normalize_descriptor(descriptor) AS normalized, label, category, confidence
FROM (SELECT DISTINCT ON (descriptor) * FROM classified WHERE descriptor <> '') d ORDER BY md5(descriptor) LIMIT 20;
\echo '== how sure is the model? (a synthetic-data model meets real council suppliers) =='
SELECT count(*) AS rows, count(*) FILTER (WHERE confidence >= 0.9) AS "conf >= 0.9",
       count(*) FILTER (WHERE confidence < 0.5) AS "conf < 0.5", count(*) FILTER (WHERE label IS NULL) AS "empty descriptor"
FROM classified;
\echo '== what the council spends its cards on, by predicted category =='
SELECT category, count(*) AS txns, round(sum(t.amount)) AS pounds, round(avg(confidence), 2) AS mean_conf
FROM classified c JOIN txns t USING (id) GROUP BY category ORDER BY pounds DESC NULLS LAST LIMIT 15;
\echo '== the whole table through classify_batch() in one call =='
\timing on
SELECT count(*) AS rows, count(label) AS labelled, count(DISTINCT label) AS distinct_labels
FROM classify_batch(ARRAY(SELECT descriptor FROM txns ORDER BY id));
\timing off
\echo '== the shared result cache: repeated descriptors never reach the model twice =='
SELECT shared, capacity, entries, hits, misses, round(hit_ratio::numeric, 3) AS hit_ratio, evictions FROM cache_stats;
\echo '== top-3 for one descriptor =='
SELECT * FROM classify_topk('AMAZON UK MARKETPLACE', 3);
SQL
log "demo done; stopping the cluster"
