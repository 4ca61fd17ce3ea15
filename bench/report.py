#!/usr/bin/env python3
"""Turns bench/run.sh's results.tsv into the foundation section of BENCHMARKS.md (between
markers, so later benchmarks keep their own sections)."""
import datetime
import os
import platform
import sys

res_path, n, batch, repeats, md_path = sys.argv[1:6]
r = {}
for line in open(res_path):
    k, v = line.rstrip("\n").split("\t")
    r[k] = float(v)


def g(k):
    return r.get(k, float("nan"))


def f(x, d=0):
    return f"{x:,.{d}f}"


cpu = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
rows = []
for ds, what in (("oxford_repeated", f"Oxford descriptors repeated to {int(n):,} rows (≈1.4k distinct)"),
                 ("distinct", f"{int(n):,} rows distinct after normalization")):
    sb, s1 = g(f"standalone_batch_{ds}"), g(f"standalone_batch1_{ds}")
    qb, qs, fl = g(f"sql_batch_{ds}"), g(f"sql_scalar_{ds}"), g(f"sql_floor_{ds}")
    rows.append((what, sb, s1, qb, qs, fl))

lines = [
    "<!-- foundation:begin (written by bench/run.sh; edit bench/report.py) -->",
    "## Foundation: SQL vs the same code outside Postgres",
    "",
    f"One run of `make bench` on {datetime.date.today().isoformat()}, {os.cpu_count()} cores ({cpu or platform.machine()}),",
    f"bundled model `txclass-merchants-v1` (int8), `txclass.batch_size = {batch}`, 1 intra-op thread,",
    f"max_length 64, best of {repeats} runs per figure, result cache off (`SET txclass.cache = off`; the cache",
    "has its own section below). Rows/s include normalization and tokenization.",
    "The standalone binary (`bench/src/main.rs`) calls the same `txclass-core` code as the extension.",
    "",
    "| data | standalone batch | standalone batch size 1 | SQL `classify_batch` | SQL `classify_transaction` per row | SQL floor: `unnest` of the same array |",
    "|---|---|---|---|---|---|",
]
for what, sb, s1, qb, qs, fl in rows:
    lines.append(f"| {what} | {f(sb)} rows/s | {f(s1)} rows/s | {f(qb)} rows/s | {f(qs)} rows/s | {f(fl)} rows/s |")
lines += ["", "| ratio (goal) | " + " | ".join(w.split(" (")[0] if "(" in w else w for w, *_ in rows) + " |", "|---|---|---|"]
def ratio_row(name, fn):
    lines.append(f"| {name} | " + " | ".join(f"{fn(*x[1:]):.2f}" for x in rows) + " |")
ratio_row("SQL batch ÷ standalone batch (≥ 0.95)", lambda sb, s1, qb, qs, fl: qb / sb)
ratio_row("same, SQL time less the floor (array in, rows out)", lambda sb, s1, qb, qs, fl: (1 / sb) / (1 / qb - 1 / fl))
ratio_row("standalone batch ÷ standalone batch size 1 (≥ 1.5)", lambda sb, s1, qb, qs, fl: sb / s1)
ratio_row("SQL batch ÷ SQL per-row scalar", lambda sb, s1, qb, qs, fl: qb / qs)
ratio_row("SQL per-row scalar ÷ standalone batch size 1", lambda sb, s1, qb, qs, fl: qs / s1)
sb, qb, fl = g("standalone_batch_oxford_repeated"), g("sql_batch_oxford_repeated"), g("sql_floor_oxford_repeated")
floor_share = (1 / fl) / (1 / qb - 1 / sb) if qb < sb else float("nan")
lines += [
    "",
    "| start-up and memory | value |",
    "|---|---|",
    f"| first call in a fresh backend: ONNX Runtime library + session + smoke inference | {g('sql_load_ms_distinct'):.0f} ms (standalone process: {g('standalone_load_ms'):.0f} ms) |",
    f"| backend RSS before the model / with the model loaded | {g('sql_rss_fresh_kb_distinct') / 1024:.0f} MB / {g('sql_rss_loaded_kb_distinct') / 1024:.0f} MB |",
    f"| backend RSS after `classify_batch` over {int(n):,} distinct rows | {g('sql_rss_after_batch_kb_distinct') / 1024:.0f} MB |",
    f"| standalone process RSS with the model loaded | {g('standalone_rss_loaded_kb') / 1024:.0f} MB |",
    "",
    "Reading it: the Oxford stream repeats (≈1.4k distinct strings in 4.4k rows), and one batch call",
    "normalizes each distinct raw string and infers each distinct normalized string once, so its",
    "batch figures show what de-duplication plus length bucketing buy on real traffic; the distinct",
    "set shows bucketing alone. Where inference is that cheap, SQL's fixed per-row costs show: Postgres",
    "building a 100k-element array and returning 100k rows (the floor column) is, on the repeated",
    f"stream, {floor_share:.0%} of the gap between SQL and standalone; the rest is the extension's",
    "per-row glue (array decode, one tuple per row). On distinct rows inference dominates and SQL runs",
    "at the standalone speed. The per-row scalar path pays one ONNX call per row, like standalone",
    "batch size 1, plus the executor's per-row cost.",
    "<!-- foundation:end -->",
]
section = "\n".join(lines) + "\n"
head = "# txclass benchmarks\n\nEach section is written by its benchmark script; numbers come from one run on one machine, so\ncompare ratios within a section, not across machines.\n\n"
old = open(md_path).read() if os.path.exists(md_path) else head
b, e = "<!-- foundation:begin", "<!-- foundation:end -->\n"
if b in old and e in old:
    new = old[:old.index(b)] + section + old[old.index(e) + len(e):]
else:
    new = old.rstrip("\n") + "\n\n" + section
open(md_path, "w").write(new)
print(section)
