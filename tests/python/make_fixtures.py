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
  recalibrated/       (with a calibrated model as third argument) its temperature x3
  bad_temperature/    ... a negative temperature;  bad_levels/  ... levels not nested
  wide5000/           5,000 classes: the bundled graph with its logits scattered into a wider
                      output (old label j at column (13*j + 7) mod 5000, the other columns a
                      constant -30), config.json with 5,000 labels: a class-count change whose
                      answers are known (the bundled model's, under the same names)
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
# wide5000: logits_wide = Gather(Pad(logits, one column of -30), index, axis=1)
WIDE = 5000
d = copy("wide5000")
m = onnx.load(os.path.join(d, "model.onnx"))
out_name = m.graph.output[0].name
for node in m.graph.node:
    node.output[:] = [o + "_base" if o == out_name else o for o in node.output]
index = np.full(WIDE, n, dtype=np.int64)           # column n of the padded logits: -30
for j in range(n):
    index[(13 * j + 7) % WIDE] = j                 # 13 is prime to 5000: no two labels collide
m.graph.initializer.extend([
    numpy_helper.from_array(np.array([0, 0, 0, 1], dtype=np.int64), "wide_pads"),
    numpy_helper.from_array(np.array(-30.0, dtype=np.float32), "wide_fill"),
    numpy_helper.from_array(index, "wide_index"),
])
m.graph.node.extend([
    helper.make_node("Pad", [out_name + "_base", "wide_pads", "wide_fill"], ["wide_padded"]),
    helper.make_node("Gather", ["wide_padded", "wide_index"], [out_name], axis=1),
])
m.graph.output[0].CopyFrom(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", WIDE]))
onnx.save(m, os.path.join(d, "model.onnx"))
cfg = json.load(open(os.path.join(d, "config.json")))
old = [cfg["id2label"][str(j)] for j in range(n)]
labels = [f"Synthetic class {i}" for i in range(WIDE)]
for j, name in enumerate(old):
    labels[(13 * j + 7) % WIDE] = name
cfg["id2label"] = {str(i): l for i, l in enumerate(labels)}
cfg["label2id"] = {l: i for i, l in enumerate(labels)}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))

# calibrated copies of a calibrated model (third argument): the same graph with another
# temperature (another identity: its answers must never come from the first one's cache entries)
# and with calibration entries that make no sense
if len(sys.argv) > 3:
    cal_src = sys.argv[3]
    for name, change in [("recalibrated", {"temperature": None}), ("bad_temperature", {"temperature": -1.0}),
                         ("bad_levels", {"confidence_levels": {"very_high": 0.5, "high": 0.9, "medium": 0.1}})]:
        d = os.path.join(out, name)
        os.makedirs(d)
        for f in FILES:
            shutil.copy(os.path.join(cal_src, f), d)
        cfg = json.load(open(os.path.join(d, "config.json")))
        for k, v in change.items():
            cfg["txclass"][k] = cfg["txclass"][k] * 3 if v is None else v
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2, sort_keys=True)

for root, dirs, files in os.walk(out):
    os.chmod(root, 0o755)
    for f in files:
        os.chmod(os.path.join(root, f), 0o644)
print(out)
