#!/usr/bin/env bash
# Train a model from your own labels (rows in PostgreSQL or a CSV) into a model directory that
# txclass.register_model accepts. Creates the training environment on first use (torch from PyPI:
# a ~5.7 GB install, ~1-2 min), then runs models/train/from_labels.py with your arguments:
#   bash scripts/train.sh --dsn "host=/tmp port=5432 dbname=app" \
#        --sql "SELECT merchant AS descriptor, category AS label, posted AS time FROM labeled" --out /srv/models/mine-v1
#   bash scripts/train.sh --help
# Environment: TXCLASS_TRAIN_VENV (default build/trainvenv).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
venv="${TXCLASS_TRAIN_VENV:-$BUILD/trainvenv}"
req="$ROOT/models/train/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating the training environment $venv (torch, transformers, onnxruntime, scikit-learn)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi
exec "$venv/bin/python" "$ROOT/models/train/from_labels.py" "$@"
