#!/usr/bin/env bash
# The drift-view scale benchmark (10M rows), one run, into BENCHMARKS.md (section "drift").
#   bash bench/drift.sh [rows]
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
trap 'bash "$ROOT/scripts/cluster.sh" stop benchdrift >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/drift.py "$ROOT" "$@"
