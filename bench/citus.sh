#!/usr/bin/env bash
# Backfill on a Citus coordinator + 2 workers beside one node: one run, into BENCHMARKS.md
# (section "citus"). See bench/citus.py.
#   bash bench/citus.sh [rows]     (default 1,000,000; PG_CONFIG picks the major, Debian's 15 by default)
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/citus.sh
trap 'for n in benchcit1 benchcitc benchcitw1 benchcitw2; do bash "$ROOT/scripts/cluster.sh" stop $n >/dev/null 2>&1 || true; done' EXIT
export PATH="$PG_BIN:$PATH"
"$PYVENV/bin/python" bench/citus.py "$ROOT" "$@"
