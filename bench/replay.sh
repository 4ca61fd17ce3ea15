#!/usr/bin/env bash
# The field's traffic replayed (64 clients, single-row INSERTs through the trigger, 85% cached real
# Oxford descriptors, 15% new, stepped offered rates) in both modes, into BENCHMARKS.md (section
# "replay"): the bundled model, and MiniLM-L6 int8 / fp32 exported by bench/minilm.sh.
#   bash bench/replay.sh            (TXCLASS_BENCH_NO_MINILM=1: the bundled model only)
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
models=()
if [ "${TXCLASS_BENCH_NO_MINILM:-0}" != 1 ]; then
  mapfile -t models < <(minilm_bench_models minilm-l6-int8 minilm-l6-fp32)
fi
trap 'bash "$ROOT/scripts/cluster.sh" stop benchreplay >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/replay.py "$ROOT" "${models[@]}"
