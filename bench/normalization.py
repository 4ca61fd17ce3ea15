#!/usr/bin/env python3
"""How much normalization cuts cardinality on the real Oxford descriptors, and what it merges.
Prints a Markdown fragment for BENCHMARKS.md.   normalization.py DATA_DIR
The Python normalizer is the twin of the Rust one (checked against the same vectors)."""
import collections
import csv
import glob
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models", "train"))
from normalize import normalize  # noqa: E402

rows = []  # (file, descriptor)
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        for row in csv.DictReader(fh):
            d = (row.get("MCH.MERCHANT NAME") or row.get("Merchant") or "").strip()
            if d:
                rows.append((os.path.basename(path).replace("procurement-card-spending-", "").replace(".csv", ""), d))


def letters(raw):
    """The letters of a descriptor outside reference-code-like tokens, lower-cased."""
    toks = re.split(r"[^0-9A-Za-z]+", raw.lower())
    return " ".join(re.sub(r"[^a-z]", "", t) for t in toks if len(re.findall(r"\d+", t)) < 2 and re.sub(r"[^a-z]", "", t))


raw_distinct = {d for _, d in rows}
norm_of = {d: normalize(d) for d in raw_distinct}
norm_distinct = set(norm_of.values())
groups = collections.defaultdict(set)
for d, n in norm_of.items():
    groups[n].add(d)
count = collections.Counter(normalize(d) for _, d in rows)
merged = sorted(((n, v) for n, v in groups.items() if len(v) > 1), key=lambda x: -count[x[0]])


def alnum(x):
    return re.sub(r"[^0-9a-z]", "", x.lower())


kinds = collections.Counter()
spot = []  # (normalized, variants, what differs) beyond case / spacing / punctuation
for n, v in merged:
    if len({alnum(x) for x in v}) == 1:
        kinds["case, spacing or punctuation"] += 1
        continue
    if len({re.sub(r"[0-9]", "", alnum(x)) for x in v}) == 1:
        why = "digits (store numbers, dates)"
    elif len({letters(x) for x in v}) == 1:
        why = "reference-code tokens"
    else:
        why = "other letters"
    kinds[why] += 1
    spot.append((n, v, why))
out = [
    f"Oxford descriptors: {len(rows):,} rows, {len(raw_distinct):,} distinct raw strings, "
    f"{len(norm_distinct):,} distinct after normalization "
    f"(**{1 - len(norm_distinct) / len(raw_distinct):.1%} fewer**). A cache that never evicts would hit "
    f"{1 - len(raw_distinct) / len(rows):.1%} of lookups keyed by the raw string and "
    f"{1 - len(norm_distinct) / len(rows):.1%} keyed by the normalized one.",
    "",
    "| month file | rows | distinct raw | distinct normalized |",
    "|---|---|---|---|",
]
by_file = collections.defaultdict(list)
for f, d in rows:
    by_file[f].append(d)
for f in sorted(by_file):
    ds = by_file[f]
    out.append(f"| {f} | {len(ds)} | {len(set(ds))} | {len({norm_of[d] for d in ds})} |")
out += [
    "",
    f"{len(merged)} normalized strings merge two or more raw variants. What tells the variants apart:",
    "",
    "| variants differ in | merged groups |",
    "|---|---|",
    *[f"| {k} | {c} |" for k, c in kinds.most_common()],
    "",
    f"Spot check: every group whose variants differ in more than case, spacing or punctuation ({len(spot)}),",
    "by rows. A wrong merge would be two merchants under one normalized string; the *other letters* kind",
    "is where to look first.",
    "",
    "| normalized | rows | differ in | raw variants |",
    "|---|---|---|---|",
]
for n, v, why in spot:
    vs = sorted(v)
    shown = ", ".join(f"`{x}`" for x in vs[:4]) + (f" (+{len(vs) - 4} more)" if len(vs) > 4 else "")
    out.append(f"| `{n}` | {count[n]} | {why} | {shown} |")
out += ["", "The most frequent merges overall:", "", "| normalized | rows | raw variants |", "|---|---|---|"]
for n, v in merged[:10]:
    vs = sorted(v)
    out.append(f"| `{n}` | {count[n]} | " + ", ".join(f"`{x}`" for x in vs[:4]) + (f" (+{len(vs) - 4} more)" if len(vs) > 4 else "") + " |")
print("\n".join(out))
