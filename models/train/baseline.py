#!/usr/bin/env python3
"""Writes drift_baseline.json into a model directory: the reference txclass's drift views
compare a monitored table with when its baseline is the model's training distribution. Like for
like: a monitored table holds the model's *predictions*, so the baseline holds them too,
measured on held-out descriptors of the training generator (unseen places and store numbers).

  label_shares          label -> share of the model's top-1 predictions on the held-out rows it
                        answers under txclass's default serving policy (an abstention, below the
                        model's min_confidence or below txclass.min_level = high, or held at
                        medium for want of the brand's name, has no label: drift() leaves rows
                        without a label out of the label shares too)
  label_shares_kind     "predicted"
  category_shares       category -> share of the same predictions
  rows                  how many held-out rows (the drift tests weigh the baseline's own noise)
  new_descriptor_share  held-out rows whose normalized descriptor no training row has
  new_descriptor_curve  [[h, share], ...]: the same against the first h training rows (a table
                        with h rows of history is compared with the share at h)
  confidence_histogram  10 bins over [0, 1] of the model's top-1 confidence on the held-out rows
  unk_token_share       share of word-piece tokens that are [UNK] on the held-out rows
  mean_tokens           word-piece tokens per descriptor (special tokens excluded) on the held-out rows

    python models/train/baseline.py <model dir> [--seed S] [--rows N] [--train-rows N]

Needs onnxruntime, tokenizers and numpy (tests/python/requirements.txt has them).
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import make  # noqa: E402
from normalize import normalize  # noqa: E402
from evidence import supports  # noqa: E402
from calibrate import served_level  # noqa: E402


def new_share_curve(held_out, history, points=(1000, 3000, 10000, 30000, 100000, 300000, 1000000)):
    """[[h, share of held_out not among the first h rows of history], ...] up to len(history)."""
    out = []
    for h in [p for p in points if p < len(history)] + [len(history)]:
        seen = set(history[:h])
        out.append([h, round(sum(1 for t in held_out if t not in seen) / max(len(held_out), 1), 6)])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--train-rows", type=int, help="the training split's size (default: metrics.json train_rows, else 150000)")
    args = ap.parse_args()
    d = args.model_dir
    cfg = json.load(open(os.path.join(d, "config.json")))
    max_length = cfg.get("txclass", {}).get("max_length", 64)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    unk = tok.token_to_id("[UNK]")
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    metrics_path = os.path.join(d, "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    unknown_share = metrics.get("unknown_share", 0.0)
    # the training split as the trainer made it: its size and its share of invented places
    train_rows = args.train_rows or metrics.get("train_rows", 150000)
    invented_places = metrics.get("invented_places", 0.0)
    block = cfg.get("txclass", {})
    temperature, floor = block.get("temperature", 1.0), block.get("min_confidence", 0.0)
    # what txclass serves by default (core/src/confidence.rs Policy): txclass.min_level = high
    # where the levels were fitted, and an answer without the brand's name is held at medium
    levels, brand_names = block.get("confidence_levels"), block.get("evidence", {})
    order = ("very_high", "high", "medium", "low")
    least = order.index(served_level(levels))

    def served(label, c, text):
        if c < floor:
            return False
        level = next((i for i, n in enumerate(order[:3]) if c >= levels[n]), 3) if levels else 3
        if level < 2 and not supports(brand_names, label, text):
            level = 2  # held at medium: the descriptor does not carry the brand's name
        return level <= least
    # the held-out rows as the model was trained: with its share of unknown businesses (open set)
    texts = [normalize(t) for t, _ in make("test", args.rows, args.seed + 1, unknown_share)]
    id2label = {int(k): v for k, v in cfg["id2label"].items()}
    label2category = cfg.get("txclass", {}).get("label2category", {})
    predicted = collections.Counter()
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
        p = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
        conf = (p / p.sum(axis=1, keepdims=True)).max(axis=1)
        for c in conf:
            hist[min(int(c * 10), 9)] += 1
        for text, c, i in zip(chunk, conf, logits.argmax(axis=1)):
            label = id2label[int(i)]
            if served(label, c, text):
                predicted[label] += 1
    answered = sum(predicted.values())
    shares = {l: round(n / answered, 8) for l, n in sorted(predicted.items())}
    categories = collections.Counter()
    for l, n in predicted.items():
        categories[label2category.get(l, "(none)")] += n / answered
    train_texts = [normalize(t) for t, _ in make("train", train_rows, args.seed, unknown_share, invented_places)]
    curve = new_share_curve(texts, train_texts)
    new_share = curve[-1][1]
    out = {
        "source": f"the model's predictions on {len(texts)} held-out descriptors of its generator (seed {args.seed + 1}"
                  + (f", {unknown_share:.0%} unknown businesses" if unknown_share else "") + ")",
        "label_shares_kind": "predicted",
        "rows": answered,
        "abstained_share": round(1 - answered / len(texts), 6),
        "label_shares": shares,
        "category_shares": {c: round(v, 8) for c, v in sorted(categories.items())},
        "new_descriptor_share": round(new_share, 6),
        "new_descriptor_curve": curve,
        "confidence_histogram": (hist / hist.sum()).round(6).tolist(),
        "unk_token_share": round(unks / max(tokens, 1), 6),
        "mean_tokens": round(tokens / len(texts), 4),
    }
    json.dump(out, open(os.path.join(d, "drift_baseline.json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "label_shares"}))


if __name__ == "__main__":
    main()
