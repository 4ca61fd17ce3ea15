#!/usr/bin/env bash
# Every test tier, in order, on each PostgreSQL major txclass supports (15, then 18; set
# TXCLASS_TEST_MAJORS="15" for one); prints one summary line per major and a last one,
# "tests: N passed, M failed", for all of them.
#   1. cargo test      — txclass-core: normalization twin vectors, model validation, bundled model
#   2. clippy, #[pg_test] — every unsafe block documented (clippy::undocumented_unsafe_blocks
#                        denied); the glue inside a real server (cargo pgrx test, as postgres)
#   3. pg_regress      — golden SQL behaviour: results, errors, privileges, CUDA fallback
#   4. parity          — logits equal Python onnxruntime's within 1e-4 on >= 200 descriptors
#   5. cache           — eviction, concurrent connections, no-preload fallback (own clusters)
#   6. registry        — 16 busy backends switching models, concurrent activation, changed files,
#                        restart, no-preload, pgbench with model switches (own clusters)
#   7. enrich          — COPY 10k rows through the trigger, backfill cancelled and resumed while
#                        another connection inserts (own cluster)
#   8. drift           — the real Oxford months replayed: per-month drift, both baselines, HTML report
#   9. faults          — model files truncated/deleted under live backends, cancel of a 1M batch,
#                        disk full under the trigger, restart (own cluster)
#  10. fuzz            — 100,000 generated descriptors through every SQL function; SQL_ASCII bytes
#  11. security        — superuser-only settings, paths, `..` and symlinks, registry and monitoring
#                        tables, SECURITY DEFINER functions (own cluster)
#  12. training        — scripts/train.sh on the labeled Oxford file: register, evaluate = the card,
#                        warm start with new classes, CSV (own cluster; creates build/trainvenv)
#  13. worker          — shared inference workers: same answers as backend mode on every path, 16
#                        clients, cancel/timeout, stopped/terminated/killed worker, model switches
#                        under pgbench, full queue, no preload, privileges (own clusters)
#  14. upgrade         — 0.1.0 from its frozen script used for real on this library, ALTER EXTENSION
#                        UPDATE: schema equals a fresh install, every row kept, serving, enriching,
#                        rollback, pg_dump/restore; snapshots and symbols of every script (own cluster)
#  15. recurring       — recurring payments through SQL: generated ground truth (precision, recall,
#                        cadence, next date), PayPal and direct as one series, incremental with late
#                        rows, upcoming/subscriptions/price changes, row-level security, the Oxford file
#  16. replication     — logical replication: classified on the publisher, the outputs replicate;
#                        on the subscriber with ENABLE ALWAYS TRIGGER, every replicated row (misses
#                        included) is enriched; backfill fills the rest (two clusters of its own)
#  17. package         — make package's .deb (15) or tarball (18) installed in place of the development
#                        install, smoke-tested (create, classify, upgrade, drop), purged without a trace
#  18. citus           — a Citus coordinator + 2 workers (Citus built from ../shared/citus, cached):
#                        install and upgrade through two-phase commit, one registry for the cluster
#                        (activation, abort, rollback, a worker down, rules), enrichment on shards
source "$(dirname "$0")/common.sh"
cd "$ROOT"
if [ -z "${TXCLASS_TEST_MAJOR:-}" ]; then
  total_p=0; total_f=0; summary=()
  mkdir -p "$BUILD"   # a fresh clone has none yet; each major's output is kept there
  for major in ${TXCLASS_TEST_MAJORS:-15 18}; do
    cfg="PG${major}_CONFIG"
    [ -n "${!cfg:-}" ] || { echo "no PostgreSQL $major known to scripts/common.sh" >&2; exit 1; }
    log "══ PostgreSQL $major"
    # the suite of one major in a process of its own (its own PG_CONFIG, PATH and logs)
    TXCLASS_TEST_MAJOR="$major" PG_CONFIG="${!cfg}" bash "$ROOT/scripts/test.sh" | tee "$BUILD/test-pg$major.out" || true
    line="$(grep -E "^tests \(PostgreSQL $major\): [0-9]+ passed, [0-9]+ failed" "$BUILD/test-pg$major.out" 2>/dev/null | tail -1 || true)"
    p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"; f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
    [ -n "$line" ] || { p=0; f=1; line="tests (PostgreSQL $major): did not finish"; }
    total_p=$((total_p + p)); total_f=$((total_f + f)); summary+=("$line")
  done
  printf '%s\n' "${summary[@]}"
  echo "tests: $total_p passed, $total_f failed"
  [ "$total_f" -eq 0 ]
  exit
fi
bash scripts/setup.sh
# psql, pg_dump and pgbench of the major under test
export PATH="$PG_BIN:$PATH"
LOGS="$BUILD/test-pg$PG_MAJOR"; mkdir -p "$LOGS"
export TXCLASS_ONNXRUNTIME="$ORT_LIB"
export CARGO_PROFILE_DEV_DEBUG=0   # halves the debug build's disk and time
TIERS=18
passed=0; failed=0; failures=()
count_cargo() {  # sums "test result: ok. N passed; M failed" lines of a log
  local p f
  p=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$1" | awk '{s+=$4} END {print s+0}' || true)
  f=$(grep -Eo '[0-9]+ failed;' "$1" | awk '{s+=$1} END {print s+0}' || true)
  passed=$((passed + p)); failed=$((failed + f))
}
count_plain() {  # adds a "<prefix>: N passed, M failed" summary line of a log; no line = 1 failure
  # (|| true: a tier that crashed before its summary is a failure, not the end of the run)
  local p f
  p=$(grep -Eo "$2: [0-9]+ passed" "$1" | awk '{print $2}' || true); p=${p:-0}
  f=$(grep -Eo "$2: [0-9]+ passed, [0-9]+ failed" "$1" | tail -1 | awk '{print $4}' || true); f=${f:-1}
  passed=$((passed + p)); failed=$((failed + f))
}
tier() { log "── $1"; }

first_major="$(set -- ${TXCLASS_TEST_MAJORS:-15 18}; echo "$1")"
if [ "$PG_MAJOR" = "$first_major" ]; then
  tier "1/$TIERS cargo test (txclass-core)"
  if cargo test -p txclass-core 2>&1 | tee "$LOGS/core.log" | grep -E "^test |test result" ; then :; fi
  count_cargo "$LOGS/core.log"
  grep -q "test result: FAILED\|error\[" "$LOGS/core.log" && failures+=("cargo test")
  grep -q "test result" "$LOGS/core.log" || { failed=$((failed + 1)); failures+=("cargo test did not run"); }
else
  tier "1/$TIERS cargo test: the core knows nothing of Postgres, it ran with PostgreSQL $first_major"
fi

tier "2/$TIERS clippy (every unsafe block says why it holds) and #[pg_test] (cargo pgrx test pg$PG_MAJOR)"
# lib.rs denies clippy::undocumented_unsafe_blocks: an unsafe block without its SAFETY note fails here
if cargo clippy --no-default-features --features "pg$PG_MAJOR" >"$LOGS/clippy.log" 2>&1; then
  passed=$((passed + 1)); log "clippy: no undocumented unsafe block"
else
  failed=$((failed + 1)); failures+=("clippy"); grep -E "^error" -A6 "$LOGS/clippy.log" | head -60
fi
pgdata="/tmp/txclass-pgrx-test$PG_MAJOR"; rm -rf "$pgdata"
if [ "$(id -u)" = 0 ]; then runas=(--runas "$PGUSER_OS"); else runas=(); fi
cargo pgrx test "pg$PG_MAJOR" "${runas[@]}" --pgdata "$pgdata" >"$LOGS/pg.log" 2>&1 || true
grep -E "^test |test result" "$LOGS/pg.log" || tail -40 "$LOGS/pg.log"
count_cargo "$LOGS/pg.log"
grep -q "test result: ok" "$LOGS/pg.log" || failures+=("#[pg_test]")
grep -q "test result" "$LOGS/pg.log" || failed=$((failed + 1))
# cargo pgrx test installed a debug build: put the release build back
bash scripts/install.sh

tier "3/$TIERS pg_regress"
if bash scripts/pg_regress.sh >"$LOGS/regress.log" 2>&1; then :; else failures+=("pg_regress"); fi
cat "$LOGS/regress.log"
ok=$(grep -Ec '^ok |^test .* \.\.\. ok' "$LOGS/regress.log" || true)
bad=$(grep -Ec 'FAILED|failed \(ignored\)' "$LOGS/regress.log" || true)
[ "$ok" -gt 0 ] || bad=$((bad + 1))
passed=$((passed + ok)); failed=$((failed + bad))

tier "4/$TIERS parity with Python onnxruntime"
trap 'bash "$ROOT/scripts/cluster.sh" stop test >/dev/null 2>&1 || true' EXIT
conn="$(bash scripts/cluster.sh start test "${TXCLASS_TEST_PORT:-54341}")"
psql $conn -d postgres -X -q -c "CREATE EXTENSION txclass" >/dev/null
if "$PYVENV/bin/python" tests/python/test_parity.py "$conn" "$ROOT/models/$BUNDLED_MODEL" "$ROOT/../shared/data/oxford-pcard" \
    | tee "$LOGS/parity.log"; then :; else failures+=("parity"); fi
count_plain "$LOGS/parity.log" parity

py_tier() {  # py_tier NAME TITLE: tests/python/test_NAME.py on clusters of its own
  tier "$2"
  if "$PYVENV/bin/python" "tests/python/test_$1.py" "$ROOT" | tee "$LOGS/$1.log"; then :; else failures+=("$1"); fi
  count_plain "$LOGS/$1.log" "$1"
}
py_tier cache "5/$TIERS result cache (eviction, concurrency, no-preload fallback)"
py_tier registry "6/$TIERS model registry (busy backends, concurrency, restart, pgbench with switches)"
py_tier enrich "7/$TIERS write-path enrichment (COPY through the trigger, backfill cancel and resume)"
py_tier drift "8/$TIERS drift (the Oxford months replayed)"
py_tier faults "9/$TIERS faults (files under live backends, cancel, disk full, restart)"
py_tier fuzz "10/$TIERS fuzz (generated input through every SQL function)"
py_tier security "11/$TIERS security (settings, paths and symlinks, tables, definer functions)"
py_tier training "12/$TIERS training from your own labels (the Oxford file: train, register, evaluate, warm start)"
py_tier worker "13/$TIERS shared inference workers (same answers, 16 clients, cancel, kill -9, switches, full queue)"
py_tier upgrade "14/$TIERS upgrade from 0.1.0 (schema equals a fresh install, rows kept, serving, rollback, pg_dump)"
py_tier recurring "15/$TIERS recurring payments (ground truth, PayPal = direct, incremental, upcoming, RLS, Oxford)"
py_tier replication "16/$TIERS logical replication (outputs replicate; subscriber-side enrichment with ENABLE ALWAYS TRIGGER)"
py_tier package "17/$TIERS package (installed in place of make install, smoke test, purged without a trace)"
if bash scripts/citus.sh >"$LOGS/citus-build.log" 2>&1; then
  py_tier citus "18/$TIERS Citus (coordinator + 2 workers: install, upgrade, one registry, enrichment on shards)"
else
  tier "18/$TIERS Citus: building Citus failed"; tail -30 "$LOGS/citus-build.log"
  failed=$((failed + 1)); failures+=("citus build")
fi

if [ ${#failures[@]} -gt 0 ]; then log "failing tiers: ${failures[*]}"; fi
echo "tests (PostgreSQL $PG_MAJOR): $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
