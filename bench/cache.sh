#!/usr/bin/env bash
# The result-cache benchmark, one run, ratios into BENCHMARKS.md (section "cache"):
#   1. per-row classify_transaction over a 1M-row table, every lookup a hit, vs md5() per row
#   2. a Zipf stream tuned to ~85% hits: cache on vs off
#   3. pgbench, 1 / 4 / 16 clients, on the hit path
#   4. normalization: distinct raw vs normalized Oxford descriptors, and what it merges
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
DATA="${TXCLASS_DATA:-$ROOT/../shared/data/oxford-pcard}"
OUT="$BUILD/bench"; mkdir -p "$OUT"; chmod 755 "$OUT"
ZIPF_ROWS="${TXCLASS_BENCH_ZIPF_ROWS:-100000}"
PGBENCH_SECONDS="${TXCLASS_BENCH_PGBENCH_SECONDS:-10}"
bash scripts/setup.sh
python3 bench/make_data.py "$DATA" "$OUT" 100000
zipf="$(python3 bench/zipf.py "$OUT/distinct.txt" "$ZIPF_ROWS" 0.85 "$OUT/zipf.txt")"
chmod 644 "$OUT"/*.txt
python3 bench/normalization.py "$DATA" >"$OUT/normalization.md"

trap 'bash "$ROOT/scripts/cluster.sh" stop benchcache >/dev/null 2>&1 || true' EXIT
conn="$(TXCLASS_CLUSTER_CONF="txclass.cache_entries = 1000000" bash scripts/cluster.sh start benchcache "${TXCLASS_BENCH_PORT:-54343}")"
P() { psql $conn -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }
P <<SQL >/dev/null
CREATE EXTENSION txclass;
CREATE TABLE oxford (i serial, d text);
\copy oxford (d) FROM '$OUT/oxford_repeated.txt'
CREATE TABLE million AS SELECT row_number() OVER () AS i, d FROM oxford, generate_series(1, 10) WHERE i <= 100000;
CREATE TABLE zipf (i serial, d text);
\copy zipf (d) FROM '$OUT/zipf.txt'
CREATE TABLE oxford_distinct AS SELECT row_number() OVER (ORDER BY d) AS id, d FROM (SELECT DISTINCT d FROM oxford WHERE d <> '') s;
CREATE FUNCTION timeit(q text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); BEGIN EXECUTE q; RETURN extract(epoch FROM clock_timestamp() - t0); END \$\$;
VACUUM ANALYZE;
SQL
results="$OUT/cache_results.tsv"; : >"$results"
log "1M rows, all hits, vs md5"
P <<'SQL' | awk -F'|' '{print $1"\t"$2}' >>"$results"
SELECT count(txclass.classify_transaction(d)) FROM oxford;   -- warm: every distinct descriptor cached, model loaded
SELECT 'misses_before', misses FROM txclass.cache_stats;
SELECT 'million_rows', count(*) FROM million;
SELECT 'md5_s', min(timeit('SELECT count(md5(d)) FROM million')) FROM generate_series(1, 3);
SELECT 'hits_s', min(timeit('SELECT count(txclass.classify_transaction(d)) FROM million')) FROM generate_series(1, 3);
SELECT 'misses_after', misses FROM txclass.cache_stats;
SQL
log "Zipf stream, cache on vs off"
P <<'SQL' | awk -F'|' '{print $1"\t"$2}' >>"$results"
SELECT 'zipf_rows', count(*) FROM zipf;
SELECT txclass.cache_reset();
SELECT 'zipf_on_s', timeit('SELECT count(txclass.classify_transaction(d)) FROM zipf');
SELECT 'zipf_hit_ratio', round(hit_ratio::numeric, 4) FROM txclass.cache_stats;
SET txclass.cache = off;
SELECT 'zipf_off_s', timeit('SELECT count(txclass.classify_transaction(d)) FROM zipf');
SQL
sed -i '/^\t*$/d; /^cache_reset/d' "$results"
log "pgbench on the hit path"
P -c "SELECT count(txclass.classify_transaction(d)) FROM oxford_distinct" >/dev/null   # all distinct descriptors cached
n="$(P -c "SELECT count(*) FROM oxford_distinct")"
cat >"$OUT/pgbench_hit.sql" <<PGB
\set id random(1, $n)
SELECT txclass.classify_transaction(d) FROM oxford_distinct WHERE id = :id;
PGB
cat >"$OUT/pgbench_md5.sql" <<PGB
\set id random(1, $n)
SELECT md5(d) FROM oxford_distinct WHERE id = :id;
PGB
chmod 644 "$OUT/pgbench_hit.sql" "$OUT/pgbench_md5.sql"
host="$(echo "$conn" | awk '{print $2}')"; port="$(echo "$conn" | awk '{print $4}')"
for script in hit md5; do
  for c in 1 4 16; do
    tps="$("$PG_BIN/pgbench" -h "$host" -p "$port" -U postgres -n -c "$c" -j 2 -T "$PGBENCH_SECONDS" -f "$OUT/pgbench_$script.sql" postgres 2>&1 \
          | awk '/^tps/ {print $3; exit}')"
    printf 'pgbench_%s_%s\t%s\n' "$script" "$c" "$tps" >>"$results"
  done
done
printf 'zipf_exponent\t%s\n' "$(echo "$zipf" | cut -f1)" >>"$results"
python3 bench/cache_report.py "$results" "$OUT/normalization.md" "$ROOT/BENCHMARKS.md"
log "BENCHMARKS.md updated (cache section)"
