#!/usr/bin/env python3
"""Writes drift_baseline.json into a model directory: the reference txclass's drift views
compare a monitored table with when its baseline is the model's training distribution.

  label_shares          label -> share in the training set (label_frequencies.json)
  confidence_histogram  10 bins over [0, 1] of the model's top-1 confidence on the held-out split
  unk_token_share       share of word-piece tokens that are [UNK] on the held-out split
  mean_tokens           word-piece tokens per descriptor (special tokens excluded) on the held-out split

    python models/train/baseline.py <model dir> [--seed S] [--rows N]

Needs onnxruntime, tokenizers and numpy (tests/python/requirements.txt has them).
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import make  # noqa: E402
from normalize import normalize  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--rows", type=int, default=10000)
    args = ap.parse_args()
    d = args.model_dir
    cfg = json.load(open(os.path.join(d, "config.json")))
    max_length = cfg.get("txclass", {}).get("max_length", 64)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    unk = tok.token_to_id("[UNK]")
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    texts = [normalize(t) for t, _ in make("test", args.rows, args.seed + 1)]
    hist = np.zeros(10)
    tokens = unks = 0
    for start in range(0, len(texts), 256):
        chunk = texts[start:start + 256]
        plain = tok.encode_batch(chunk, add_special_tokens=False)
        for e in plain:
            ids = e.ids[: max_length - 2]
            tokens += len(ids)
            unks += sum(1 for i in ids if i == unk)
        enc = [e.ids[:max_length] for e in tok.encode_batch(chunk)]
        width = max(len(x) for x in enc)
        ids = np.zeros((len(enc), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, x in enumerate(enc):
            ids[i, : len(x)] = x
            mask[i, : len(x)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = sess.run(None, {k: v for k, v in feed.items() if k in names})[0]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        conf = (p / p.sum(axis=1, keepdims=True)).max(axis=1)
        for c in conf:
            hist[min(int(c * 10), 9)] += 1
    shares = json.load(open(os.path.join(d, "label_frequencies.json")))
    out = {
        "source": f"training label shares; confidence and tokens on {len(texts)} held-out descriptors (seed {args.seed + 1})",
        "label_shares": shares,
        "confidence_histogram": (hist / hist.sum()).round(6).tolist(),
        "unk_token_share": round(unks / max(tokens, 1), 6),
        "mean_tokens": round(tokens / len(texts), 4),
    }
    json.dump(out, open(os.path.join(d, "drift_baseline.json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "label_shares"}))


if __name__ == "__main__":
    main()
