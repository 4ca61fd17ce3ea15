#!/usr/bin/env bash
# Shared inference workers vs per-backend sessions, both modes in one run, into BENCHMARKS.md
# (section "worker"): the bundled model, and MiniLM-L6 fp32 / int8 exported by bench/minilm.sh.
#   bash bench/worker.sh            (TXCLASS_BENCH_NO_MINILM=1: the bundled model only)
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
models=()
if [ "${TXCLASS_BENCH_NO_MINILM:-0}" != 1 ]; then
  mapfile -t models < <(minilm_bench_models minilm-l6-fp32 minilm-l6-int8)
fi
trap 'bash "$ROOT/scripts/cluster.sh" stop benchworker >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/worker.py "$ROOT" "${models[@]}"
