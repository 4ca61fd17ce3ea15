#!/usr/bin/env bash
# The partitioned write path beside the plain one: COPY through the trigger into a monthly
# partitioned table vs a plain table, backfill of each; one run, into BENCHMARKS.md (section
# "partitioned"). See bench/partitioned.py.
#   bash bench/partitioned.sh [rows]     (default 1,000,000)
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
trap 'bash "$ROOT/scripts/cluster.sh" stop benchpart >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/partitioned.py "$ROOT" "$@"
