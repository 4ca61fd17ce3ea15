#!/usr/bin/env bash
# txclass vs a Python inference service + client, end to end; parallel query. One run, into
# BENCHMARKS.md (section "alternative"). See bench/alternative.py.
#   bash bench/alternative.sh [rows]     (default 200,000)
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
trap 'bash "$ROOT/scripts/cluster.sh" stop benchalt >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/alternative.py "$ROOT" "$@"
