#!/usr/bin/env python3
"""The partitioned write path beside the plain one, one run, into BENCHMARKS.md (section
"partitioned"):

  1. psql \\copy of N rows (default 1,000,000; the ~85%-hit stream of bench/enrich.py, dates over
     2026) into an attached plain table (PRIMARY KEY (id)) and into an attached table partitioned
     by month (12 partitions, PRIMARY KEY (id, posted), attach on the parent), cache emptied
     before each;
  2. backfill of 200,000 rows of each (loaded before attach; cache emptied before each).

    bench/partitioned.py <repo root> [rows]      (bench/partitioned.sh runs set-up first)
"""
import os
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sections  # noqa: E402
from enrich import psql, streams  # noqa: E402
from sections import write_section  # noqa: E402

ROOT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
NAME, PORT = "benchpart", int(os.environ.get("TXCLASS_BENCH_PORT", "54346"))
OUT = os.path.join(ROOT, "build", "bench")
PARTITIONS = ("SELECT format('CREATE TABLE %I PARTITION OF {t} FOR VALUES FROM (%L) TO (%L)', '{t}_' || to_char(m, 'MM'), m, "
              "m + interval '1 month') FROM generate_series(date '2026-01-01', date '2026-12-01', interval '1 month') m")


def create(c, t, kind):
    if kind == "plain":
        c.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, posted date NOT NULL, descriptor text)")
    else:
        c.execute(f"CREATE TABLE {t} (id bigint NOT NULL, posted date NOT NULL, descriptor text, PRIMARY KEY (id, posted)) "
                  "PARTITION BY RANGE (posted)")
        for (ddl,) in c.execute(PARTITIONS.format(t=t)).fetchall():
            c.execute(ddl)


def main():
    os.makedirs(OUT, exist_ok=True)
    hot, _ = streams(N)
    path = f"{OUT}/partitioned_hot.tsv"
    with open(path, "w") as f:
        for i, d in enumerate(hot):
            f.write(f"{i}\t2026-{1 + i % 12:02d}-{1 + i % 28:02d}\t{d}\n")
    os.chmod(path, 0o644)
    flags = sections.cluster(ROOT, "start", NAME, PORT, {"TXCLASS_CLUSTER_CONF": "txclass.cache_entries = 2000000"}).split()
    ci = f"host={flags[1]} port={flags[3]} user={flags[5]} dbname=postgres"
    o = {"rows": N}
    try:
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            c.execute("SELECT txclass.classify_transaction('warm up')")
            for kind in ("plain", "partitioned"):
                create(c, f"copy_{kind}", kind)
                c.execute(f"SELECT txclass.attach('copy_{kind}', 'descriptor', time_column => 'posted')")
                create(c, f"bf_{kind}", kind)
        for kind in ("plain", "partitioned"):
            psql(flags, "SELECT txclass.cache_reset()")
            with psycopg.connect(ci, autocommit=True) as c:
                before = c.execute("SELECT row_by_row, batched FROM txclass.enrichment_stats").fetchone()
            o[f"copy_{kind}"] = psql(flags, f"\\copy copy_{kind} (id, posted, descriptor) FROM '{path}'")
            with psycopg.connect(ci, autocommit=True) as c:
                after = c.execute("SELECT row_by_row, batched FROM txclass.enrichment_stats").fetchone()
                o[f"enriched_{kind}"] = c.execute(f"SELECT count(txclass_model) FROM copy_{kind}").fetchone()[0]
            o[f"row_by_row_{kind}"], o[f"batched_{kind}"] = after[0] - before[0], after[1] - before[1]
            print("copy", kind, round(o[f"copy_{kind}"], 1), "s", flush=True)
        for kind in ("plain", "partitioned"):
            with open(f"{OUT}/partitioned_200k.tsv", "w") as f:
                for i, d in enumerate(hot[:200_000]):
                    f.write(f"{i}\t2026-{1 + i % 12:02d}-{1 + i % 28:02d}\t{d}\n")
            os.chmod(f"{OUT}/partitioned_200k.tsv", 0o644)
            psql(flags, f"\\copy bf_{kind} (id, posted, descriptor) FROM '{OUT}/partitioned_200k.tsv'")
            with psycopg.connect(ci, autocommit=True) as c:
                c.execute(f"SELECT txclass.attach('bf_{kind}', 'descriptor', time_column => 'posted')")
                c.execute(f"ANALYZE bf_{kind}")
                c.execute("SELECT txclass.cache_reset()")
                t = time.perf_counter()
                c.execute(f"CALL txclass.backfill('bf_{kind}', batch_size => 10000)")
                o[f"backfill_{kind}"] = time.perf_counter() - t
                o[f"bf_labelled_{kind}"] = c.execute(f"SELECT count(txclass_model) FROM bf_{kind}").fetchone()[0]
            print("backfill", kind, round(o[f"backfill_{kind}"], 1), "s", flush=True)
    finally:
        sections.cluster(ROOT, "stop", NAME, PORT)
    report(o)


def report(o):
    n = o["rows"]
    md = f"""<!-- partitioned:begin (written by bench/partitioned.sh; edit bench/partitioned.py) -->
## Write path on a partitioned table, beside the plain one

One run of `bash bench/partitioned.sh` on this machine (2 cores): psql `\\copy` of {n:,} rows (the
~85%-hit stream of the section above, dates over 2026) into an attached plain table (`PRIMARY KEY
(id)`) and into an attached table partitioned by month (12 partitions, `PRIMARY KEY (id, posted)`,
`txclass.attach` on the parent); then `CALL txclass.backfill(..., batch_size => 10000)` of 200,000
rows loaded before attach. The result cache is emptied before each.

| | plain table | partitioned (12 months) | partitioned ÷ plain time |
|---|---|---|---|
| COPY {n:,} rows through the trigger | {o['copy_plain']:.1f} s ({n / o['copy_plain']:,.0f} rows/s) | {o['copy_partitioned']:.1f} s ({n / o['copy_partitioned']:,.0f} rows/s) | **{o['copy_partitioned'] / o['copy_plain']:.2f}** |
| backfill of 200,000 rows | {o['backfill_plain']:.1f} s ({200000 / o['backfill_plain']:,.0f} rows/s) | {o['backfill_partitioned']:.1f} s ({200000 / o['backfill_partitioned']:,.0f} rows/s) | **{o['backfill_partitioned'] / o['backfill_plain']:.2f}** |

Every row was enriched (COPY: {o['enriched_plain']:,} and {o['enriched_partitioned']:,}; backfill:
{o['bf_labelled_plain']:,} and {o['bf_labelled_partitioned']:,}). Misses went to statement batches on both
({o['batched_plain']:,} and {o['batched_partitioned']:,} rows, {o['row_by_row_plain']} and
{o['row_by_row_partitioned']} row by row): the row trigger is cloned onto each partition, and one
`UPDATE` per partition through its share of the composite key writes a batch back. Backfill walks
the partitions one after another, each in key order.
<!-- partitioned:end -->"""
    write_section(ROOT, "partitioned", md)


if __name__ == "__main__":
    main()
