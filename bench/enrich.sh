#!/usr/bin/env bash
# The write-path benchmark (COPY through the trigger at ~85% and 0% cache hits, backfill vs
# classify_batch), one run, into BENCHMARKS.md (section "enrich"). See bench/enrich.py.
#   bash bench/enrich.sh [rows]     (default 1,000,000)
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
trap 'bash "$ROOT/scripts/cluster.sh" stop benchenrich >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/enrich.py "$ROOT" "$@"
