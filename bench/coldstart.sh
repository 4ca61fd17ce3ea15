#!/usr/bin/env bash
# A new connection's first classification with real-size models (bundled, MiniLM-L6, a
# BERT-base-sized export), in worker and backend mode: 16 connections one after another and 64
# at once. Makes the two models once (build/coldstart-models, with the training venv of
# scripts/train.sh). One JSON line per model and mode; see bench/coldstart.py.
#   bash bench/coldstart.sh [label]     (TXCLASS_COLDSTART_MODES="worker": worker mode only)
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
models=/tmp/txclass-coldstart-models   # readable by the server's OS user
if [ ! -f "$models/bert-base/model.onnx" ]; then
  venv="${TXCLASS_TRAIN_VENV:-$BUILD/trainvenv}"
  [ -x "$venv/bin/python" ] || { log "no $venv: run bash scripts/train.sh --help once (it creates it)"; exit 1; }
  weights="$(minilm_weights "$venv")"
  mkdir -p "$models"
  "$venv/bin/python" bench/coldstart_models.py "$weights" "models/$BUNDLED_MODEL/config.json" "$models"
  chmod -R a+rX "$models"
fi
trap 'bash "$ROOT/scripts/cluster.sh" stop coldstart >/dev/null 2>&1 || true' EXIT
export PATH="$PG_BIN:$PATH"
"$PYVENV/bin/python" bench/coldstart.py "$ROOT" "$models" "${1:-}"
