#!/usr/bin/env bash
# The 10-minute soak (pgbench, 16 clients, scalar + batch + trigger inserts + model switches;
# errors and backend memory growth), one run, into BENCHMARKS.md (section "soak").
# bench/soak.sh [seconds]   (default 600). See bench/soak.py.
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
trap 'bash "$ROOT/scripts/cluster.sh" stop benchsoak >/dev/null 2>&1 || true' EXIT
cd bench && "$PYVENV/bin/python" soak.py "$ROOT" "${1:-600}"
