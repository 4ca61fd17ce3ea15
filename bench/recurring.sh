#!/usr/bin/env bash
# The recurring-payments scale benchmark (10M rows, 200k accounts), one run, into BENCHMARKS.md
# (section "recurring").   bash bench/recurring.sh [accounts]
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
trap 'bash "$ROOT/scripts/cluster.sh" stop benchrec >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/recurring.py "$ROOT" "$@"
