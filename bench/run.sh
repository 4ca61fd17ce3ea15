#!/usr/bin/env bash
# The foundation benchmark, one run, results as ratios into BENCHMARKS.md:
#   standalone Rust (txclass-core, same model / tokenizer / batch size / threads / max_length)
#   beside classify_batch() and classify_transaction() in SQL, on the same descriptors.
# Run it on an otherwise idle machine: `make bench`.
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
N="${TXCLASS_BENCH_ROWS:-100000}"
BATCH="${TXCLASS_BENCH_BATCH:-64}"
REPEATS="${TXCLASS_BENCH_REPEATS:-3}"
DATA="${TXCLASS_DATA:-$ROOT/../shared/data/oxford-pcard}"
OUT="$BUILD/bench"; mkdir -p "$OUT"; chmod 755 "$OUT"
bash scripts/setup.sh
python3 bench/make_data.py "$DATA" "$OUT" "$N"
chmod 644 "$OUT"/*.txt
log "building the standalone benchmark (release)"
cargo build --release -q -p txclass-bench
BIN="$ROOT/target/release/txclass-bench"
MODEL="$ROOT/models/$BUNDLED_MODEL"

trap 'bash "$ROOT/scripts/cluster.sh" stop bench >/dev/null 2>&1 || true' EXIT
conn="$(bash scripts/cluster.sh start bench "${TXCLASS_BENCH_PORT:-54342}")"
P() { psql $conn -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }
P -c "CREATE EXTENSION txclass" >/dev/null
P <<SQL >/dev/null
CREATE TABLE bench_oxford_repeated (i serial, d text);
CREATE TABLE bench_distinct (i serial, d text);
\copy bench_oxford_repeated (d) FROM '$OUT/oxford_repeated.txt'
\copy bench_distinct (d) FROM '$OUT/distinct.txt'
-- wall-clock of a statement, measured in the server
CREATE FUNCTION timeit(q text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); BEGIN EXECUTE q; RETURN extract(epoch FROM clock_timestamp() - t0); END \$\$;
-- resident memory of the calling backend (superuser: reads /proc/self/status)
CREATE FUNCTION rss_kb() RETURNS bigint LANGUAGE sql AS
\$\$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmRSS:\s+(\d+)'))[1]::bigint \$\$;
VACUUM ANALYZE;
SQL

results="$OUT/results.tsv"; : >"$results"

for ds in oxford_repeated distinct; do
  log "standalone: $ds"
  "$BIN" "$MODEL" "$ORT_LIB" "$OUT/$ds.txt" "$BATCH" 1 64 "$REPEATS" >"$OUT/standalone_$ds.jsonl"
  python3 - "$OUT/standalone_$ds.jsonl" "$ds" >>"$results" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o["name"] in ("batch", "batch1"):
        print(f"standalone_{o['name']}_{sys.argv[2]}\t{o['rows_per_s']}")
    if o["name"] == "load":
        print(f"standalone_load_ms\t{o['ms']}")
        print(f"standalone_rss_loaded_kb\t{o['rss_after_kb']}")
    if o["name"] == "rss":
        print(f"standalone_rss_end_kb_{sys.argv[2]}\t{o['kb']}")
PY
  log "SQL: $ds"
  rows="$(P -c "SELECT count(*) FROM bench_$ds")"
  # one backend for all of this dataset's SQL measurements; the first call loads the model
  P <<SQL >"$OUT/sql_$ds.txt"
SET txclass.batch_size = $BATCH;
SET txclass.cache = off;   -- like for like: the standalone binary has no cache (bench/cache.sh measures it)
SELECT 'rss_fresh_kb', rss_kb();
SELECT 'load_ms', load_ms FROM txclass.model_info();
SELECT 'rss_loaded_kb', rss_kb();
SELECT 'batch', min(timeit('SELECT count(*) FROM txclass.classify_batch(ARRAY(SELECT d FROM bench_$ds ORDER BY i))')) FROM generate_series(1, $REPEATS);
SELECT 'rss_after_batch_kb', rss_kb();
SELECT 'floor', min(timeit('SELECT count(*) FROM unnest(ARRAY(SELECT d FROM bench_$ds ORDER BY i))')) FROM generate_series(1, $REPEATS);
SELECT 'scalar', min(timeit('SELECT count(txclass.classify_transaction(d)) FROM bench_$ds')) FROM generate_series(1, $REPEATS);
SQL
  awk -F'|' -v ds="$ds" -v rows="$rows" '
    $1=="batch"  {printf "sql_batch_%s\t%.1f\n", ds, rows/$2; next}
    $1=="scalar" {printf "sql_scalar_%s\t%.1f\n", ds, rows/$2; next}
    $1=="floor"  {printf "sql_floor_%s\t%.1f\n", ds, rows/$2; next}
    NF==2        {printf "sql_%s_%s\t%s\n", $1, ds, $2}' "$OUT/sql_$ds.txt" >>"$results"
done

python3 bench/report.py "$results" "$N" "$BATCH" "$REPEATS" "$ROOT/BENCHMARKS.md"
log "BENCHMARKS.md updated"
