#!/usr/bin/env python3
"""The drift-view scale benchmark, one run, into BENCHMARKS.md (section "drift"):
a 10M-row monitored table (30 days, 100k distinct descriptors, 300 labels); the time of the
first full refresh_drift, of an incremental refresh after one more day (100k rows), of drift()
and drift_summary over the summaries, and of the naive alternative (aggregating the table
itself on every look).

    bench/drift.py <repo root> [rows]        (bench/drift.sh runs set-up first)
"""
import os
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sections  # noqa: E402
from sections import write_section  # noqa: E402

ROOT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
NAME, PORT = "benchdrift", int(os.environ.get("TXCLASS_BENCH_PORT", "54348"))


def cluster(cmd):
    return sections.cluster(ROOT, cmd, NAME, PORT)


def timed(c, sql, params=None):
    t = time.perf_counter()
    r = c.execute(sql, params).fetchall()
    return time.perf_counter() - t, r


ROWS = """INSERT INTO big (ts, descriptor, txclass_label, txclass_confidence, txclass_model)
SELECT %s::timestamptz + (g::float8 / %s) * %s::interval,
       (ARRAY['STARBUCKS STORE','TESCO STORES','UBER TRIP','SHELL OIL','NETFLIX.COM','JOES DINER'])[1 + k %% 6]
         || ' ' || translate(md5(k::text), '0123456789', 'ghijklmnop'),
       'Label ' || (k %% 300), 0.5 + (k %% 50) / 100.0, 'synthetic'
FROM generate_series(1, %s) g, LATERAL (SELECT (hashint4(g) & 2147483647) %% 100000 AS k) x"""


def main():
    flags = cluster("start").split()
    ci = f"host={flags[1]} port={flags[3]} user={flags[5]} dbname=postgres"
    o = {"rows": N}
    try:
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            c.execute("CREATE TABLE big (id bigserial PRIMARY KEY, ts timestamptz NOT NULL, descriptor text, "
                      "txclass_label text, txclass_category text, txclass_confidence real, txclass_model text)")
            t = time.perf_counter()
            c.execute(ROWS, ("2026-01-01", N, "30 days", N))
            o["load_s"] = time.perf_counter() - t
            c.execute("VACUUM ANALYZE big")
            c.execute("SELECT txclass.attach('big', 'descriptor', time_column => 'ts')")
            c.execute("DROP TRIGGER txclass_enrich ON big; DROP TRIGGER txclass_enrich_batch ON big")  # labels are synthetic
            o["refresh_full_s"], r = timed(c, "SELECT txclass.refresh_drift('big')")
            o["refreshed_rows"] = r[0][0]
            c.execute(ROWS, ("2026-01-31", N // 100, "1 day", N // 100))
            o["refresh_inc_s"], r = timed(c, "SELECT txclass.refresh_drift('big')")
            o["inc_rows"] = r[0][0]
            o["drift_s"], r = timed(c, "SELECT * FROM txclass.drift('big')")
            o["drift_buckets"] = len(r)
            o["drift_week_s"], _ = timed(c, "SELECT * FROM txclass.drift('big', 'week')")
            o["summary_s"], _ = timed(c, "SELECT * FROM txclass.drift_summary")
            o["summary_rows"] = c.execute("SELECT count(*) FROM txclass.drift_counts").fetchone()[0]
            o["naive_s"], _ = timed(c, "SELECT date_trunc('day', ts), txclass_label, count(*), avg(txclass_confidence) "
                                       "FROM big GROUP BY 1, 2")
    finally:
        cluster("stop")
    md = f"""<!-- drift:begin (written by bench/drift.sh; edit bench/drift.py) -->
## Drift views at scale

One run of `bash bench/drift.sh` on this machine (2 cores): a monitored table of {o['rows']:,} rows over
30 days (100,000 distinct descriptors, 300 labels; outputs synthetic, so the numbers measure the
drift machinery, not the model). The views read per-day, per-label summaries that
`txclass.refresh_drift` folds in incrementally ({o['summary_rows']:,} summary rows here).

| step | time |
|---|---|
| first `refresh_drift` over all {o['refreshed_rows']:,} rows (tokenizes every descriptor once) | {o['refresh_full_s']:.1f} s |
| incremental `refresh_drift` after one more day ({o['inc_rows']:,} rows) | {o['refresh_inc_s']:.2f} s |
| `drift(table)`: {o['drift_buckets']} daily buckets with PSI, JS, G-test p-values, category metrics, movers, confidence, never-seen against the baseline's curve, [UNK], statuses | {o['drift_s'] * 1000:.0f} ms |
| `drift(table, 'week')` | {o['drift_week_s'] * 1000:.0f} ms |
| `drift_summary` (every monitored table's latest bucket) | {o['summary_s'] * 1000:.0f} ms |
| for scale: the naive alternative, one `GROUP BY day, label` over the table itself (counts and mean confidence only) | {o['naive_s']:.1f} s |

Scheduling: `refresh_drift_all()` is one statement, so pg_cron (Debian: `postgresql-15-cron`)
can run it every few minutes; each run reads only the rows added since the last one.
<!-- drift:end -->"""
    write_section(ROOT, "drift", md)


if __name__ == "__main__":
    main()
