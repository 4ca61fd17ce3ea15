#!/usr/bin/env python3
"""Broken and odd model directories for the pg_regress error tests, at fixed paths so the
golden output is stable:   make_fixtures.py <bundled model dir> <out dir>

  missing/            (does not exist)
  malformed_config/   config.json cut in half
  no_id2label/        config.json without id2label
  extra_label/        config.json lists one label more than the model outputs
  corrupt_onnx/       model.onnx cut in half
  bad_tokenizer/      tokenizer.json is not a tokenizer
  wrong_inputs/       a valid ONNX graph whose input is called "features"
  good/               an unchanged copy (for "the same backend works after the fix")
  relabelled/         the same ONNX graph with label 'Starbucks' renamed: another model identity
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

src, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
FILES = ["model.onnx", "tokenizer.json", "config.json"]


def copy(name):
    d = os.path.join(out, name)
    os.makedirs(d)
    for f in FILES:
        shutil.copy(os.path.join(src, f), d)
    return d


copy("good")
d = copy("malformed_config")
txt = open(os.path.join(d, "config.json")).read()
open(os.path.join(d, "config.json"), "w").write(txt[: len(txt) // 2])
d = copy("no_id2label")
cfg = json.load(open(os.path.join(d, "config.json")))
cfg.pop("id2label"); cfg.pop("label2id", None)
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
d = copy("extra_label")
cfg = json.load(open(os.path.join(d, "config.json")))
n = len(cfg["id2label"])
cfg["id2label"][str(n)] = "A Brand New Class"
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
d = copy("relabelled")
cfg = json.load(open(os.path.join(d, "config.json")))
for k, v in list(cfg["id2label"].items()):
    if v == "Starbucks":
        cfg["id2label"][k] = "Starbucks (renamed)"
cfg.get("txclass", {}).get("label2category", {}).pop("Starbucks", None)
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
d = copy("corrupt_onnx")
b = open(os.path.join(d, "model.onnx"), "rb").read()
open(os.path.join(d, "model.onnx"), "wb").write(b[: len(b) // 2])
d = copy("bad_tokenizer")
open(os.path.join(d, "tokenizer.json"), "w").write('{"this is": "not a tokenizer"}')

# wrong_inputs: logits = MatMul(features, W) with the right output width
d = copy("wrong_inputs")
w = numpy_helper.from_array(np.zeros((4, n), dtype=np.float32), "W")
g = helper.make_graph(
    [helper.make_node("MatMul", ["features", "W"], ["logits"])], "wrong_inputs",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n])], [w])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.save(m, os.path.join(d, "model.onnx"))
for root, dirs, files in os.walk(out):
    os.chmod(root, 0o755)
    for f in files:
        os.chmod(os.path.join(root, f), 0o644)
print(out)
