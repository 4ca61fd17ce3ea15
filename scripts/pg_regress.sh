#!/usr/bin/env bash
# Runs the pg_regress golden tests (tests/pg_regress) against the installed extension, on a
# temporary instance started by pg_regress itself as the postgres OS user.
#   scripts/pg_regress.sh            run and compare
#   scripts/pg_regress.sh --bless    run and accept the results as the new expected output
source "$(dirname "$0")/common.sh"
REGRESS="$(dirname "$($PG_CONFIG --pgxs)")/../test/regress/pg_regress"
work="$BUILD/pg_regress"
[ "$(id -u)" = 0 ] && { as_pg test -w "$BUILD" 2>/dev/null || work="/tmp/txclass-pg_regress"; }
rm -rf "$work"; mkdir -p "$work"
cp -r "$ROOT/tests/pg_regress/sql" "$ROOT/tests/pg_regress/expected" "$ROOT/tests/pg_regress/schedule" "$work/"
# expected output names the server's share directory @SHAREDIR@ (it differs between majors)
SHAREDIR="$($PG_CONFIG --sharedir)"
sed -i "s#@SHAREDIR@#$SHAREDIR#g" "$work"/expected/*.out
echo "shared_preload_libraries = 'txclass'" >"$work/temp.conf"
# broken model directories at fixed paths for errors.sql; copies of txclass-merchants-v1, which
# the registry tests register as v1 (the same files: the NOTICE they check)
"$PYVENV/bin/python" "$ROOT/tests/python/make_fixtures.py" "$ROOT/models/txclass-merchants-v1" /tmp/txclass-fixtures \
    "$ROOT/models/txclass-merchants-v3" >/dev/null
[ "$(id -u)" = 0 ] && chown -R "$PGUSER_OS" "$work"
unset RUST_BACKTRACE   # else every Rust-side ERROR carries a backtrace in its DETAIL
set +e
( cd "$work" && as_pg "$REGRESS" --temp-instance="$work/tmp_check" --temp-config="$work/temp.conf" \
    --bindir="$PG_BIN" --inputdir="$work" --outputdir="$work" --dbname=txclass_regress \
    --port="${TXCLASS_REGRESS_PORT:-54340}" --schedule="$work/schedule" )
rc=$?
set -e
if [ "${1:-}" = "--bless" ]; then
  for f in "$work"/results/*.out; do
    sed "s#$SHAREDIR#@SHAREDIR@#g" "$f" >"$ROOT/tests/pg_regress/expected/$(basename "$f")"
  done
  log "expected output updated from $work/results"
  exit 0
fi
if [ $rc -ne 0 ] && [ -f "$work/regression.diffs" ]; then
  cat "$work/regression.diffs" | head -200
fi
exit $rc
