#!/usr/bin/env python3
"""A Zipf-distributed descriptor stream over a vocabulary of distinct descriptors, with the
exponent tuned so that a cache that never evicts would hit `target` of lookups
(hit ratio = 1 - distinct normalized strings / rows).

    zipf.py VOCAB_FILE N TARGET OUT_FILE     prints: exponent, expected hit ratio
"""
import bisect
import random
import sys

sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "models", "train"))
from normalize import normalize  # noqa: E402

vocab_file, n, target, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
vocab = [l.rstrip("\n") for l in open(vocab_file) if l.strip()]
norm = [normalize(v) for v in vocab]


def sample(s, seed=1):
    w = [1.0 / (r + 1) ** s for r in range(len(vocab))]
    cdf, acc = [], 0.0
    for x in w:
        acc += x
        cdf.append(acc)
    rng = random.Random(seed)
    return [min(bisect.bisect_left(cdf, rng.random() * acc), len(vocab) - 1) for _ in range(n)]


def hit_ratio(idx):
    return 1 - len({norm[i] for i in idx}) / len(idx)


lo, hi = 0.5, 2.0
for _ in range(18):
    mid = (lo + hi) / 2
    if hit_ratio(sample(mid)) < target:
        lo = mid
    else:
        hi = mid
idx = sample(hi)
with open(out, "w") as f:
    for i in idx:
        f.write(vocab[i] + "\n")
print(f"{hi:.4f}\t{hit_ratio(idx):.4f}")
