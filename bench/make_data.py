#!/usr/bin/env python3
"""Benchmark inputs from the real Oxford descriptors (../shared/data/oxford-pcard):
  oxford_repeated.txt  every descriptor of the data set, in order, repeated to >= N rows
                       (real traffic: ~1.4k distinct strings; the batch path computes each
                       distinct normalized string once per call)
  distinct.txt         N rows that stay distinct after normalization: each real descriptor
                       with a unique letter suffix (the worst case for the batch path: no repeats)
usage: make_data.py DATA_DIR OUT_DIR [N]
"""
import csv
import glob
import os
import string
import sys

data_dir, out_dir = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
rows = []
for path in sorted(glob.glob(os.path.join(data_dir, "*.csv"))):
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        for row in csv.DictReader(fh):
            d = (row.get("MCH.MERCHANT NAME") or row.get("Merchant") or "").strip()
            rows.append(d.replace("\t", " ").replace("\\", " "))
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "oxford_repeated.txt"), "w") as f:
    k = 0
    while k < n:
        for d in rows:
            f.write(d + "\n"); k += 1


def word(i):
    s = ""
    i += 26 * 27  # at least three letters
    while i:
        i, r = divmod(i, 26)
        s = string.ascii_lowercase[r] + s
    return s


distinct = [d for d in dict.fromkeys(rows) if d]
with open(os.path.join(out_dir, "distinct.txt"), "w") as f:
    for i in range(n):
        f.write(f"{distinct[i % len(distinct)]} {word(i)}\n")
