#!/usr/bin/env python3
"""The registry benchmark, one run, into BENCHMARKS.md (section "registry"):

  1. switch latency: 16 busy backends classify in a loop; 9 activations and 3 rollbacks; for
     each, the time from the commit until every one of the 16 has answered with the new model;
  2. class count: load time and batch rows/s of the bundled 372-class model vs the 5,000-class
     fixture (same network, wider output), cache off;
  3. rules: the per-row cached path with 0 vs 1,000 rules (none matching), and classify_batch.

    bench/registry.py <repo root>        (bench/registry.sh runs set-up first)
"""
import os
import statistics
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sections  # noqa: E402
from sections import write_section  # noqa: E402

ROOT = sys.argv[1]
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from busy import BusyBackends, activate  # noqa: E402

FIX = "/tmp/txclass-bench-fixtures"
NAME, PORT = "benchregistry", int(os.environ.get("TXCLASS_BENCH_PORT", "54344"))


def cluster(cmd):
    return sections.cluster(ROOT, cmd, NAME, PORT)


def timeit(conn, sql, repeat=3):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        conn.execute(sql).fetchall()
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    return best


def main():
    flags = cluster("start").split()
    ci = f"host={flags[1]} port={flags[3]} user={flags[5]} dbname=postgres"
    out = {}
    try:
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            sections.three_models(ROOT, c, FIX)
        # 1. switch latency
        steps = [("activate", f"SELECT txclass.activate_model('{m}')", m) for m in ["relabelled", "wide", "v1"] * 3]
        steps += [("rollback", "SELECT txclass.rollback_model()", m) for m in ["wide", "relabelled", "v1"]]
        lat = []
        with BusyBackends(ci, 16) as busy:
            time.sleep(2)
            c0, t0 = sum(busy.calls), time.monotonic()
            time.sleep(3)
            out["busy_calls_per_s"] = (sum(busy.calls) - c0) / (time.monotonic() - t0)
            for kind, sql, want in steps:
                busy.forget()
                t = activate(ci, sql)
                s = busy.wait_all_serve(want, t)
                lat.append((kind, want, s))
                time.sleep(1.0)
            errors, mislabelled, calls = list(busy.errors), list(busy.mislabelled), sum(busy.calls)
        out["switch"] = lat
        out["switch_errors"], out["switch_mislabelled"], out["switch_calls"] = len(errors), len(mislabelled), calls
        # 2. class count and 3. rules
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("SET txclass.cache = off")
            # distinct after normalization: letters, not digits (digits normalize to '#')
            c.execute("CREATE TABLE d20k AS SELECT b || ' ' || translate(md5(g::text), '0123456789', 'ghijklmnop') AS d "
                      "FROM generate_series(1, 20000) g, "
                      "LATERAL (SELECT (ARRAY['STARBUCKS STORE','TESCO STORES','UBER TRIP','SHELL OIL','NETFLIX.COM','JOES DINER'])[1 + g % 6]) x(b)")
            for m in ["v1", "wide"]:
                with psycopg.connect(ci, autocommit=True) as fresh:
                    fresh.execute("SET txclass.cache = off")
                    fresh.execute(f"SELECT txclass.activate_model('{m}')")
                    fresh.execute("SELECT txclass.classify_transaction('x')")
                    out[f"load_ms_{m}"] = fresh.execute("SELECT load_ms FROM txclass.model_info()").fetchone()[0]
                    s = timeit(fresh, "SELECT count(label) FROM txclass.classify_batch((SELECT array_agg(d) FROM d20k))")
                    out[f"batch_rows_s_{m}"] = 20000 / s
            c.execute("SELECT txclass.activate_model('v1')")
            c.execute("RESET txclass.cache")
            c.execute("CREATE TABLE hits AS SELECT 'STARBUCKS STORE ' || (g % 1000) AS d FROM generate_series(1, 200000) g")
            c.execute("SELECT count(txclass.classify_transaction(d)) FROM hits")  # warm the cache
            q_row = "SELECT count(txclass.classify_transaction(d)) FROM hits"
            q_batch = "SELECT count(label) FROM txclass.classify_batch((SELECT array_agg(d) FROM hits))"
            out["row_0"], out["batch_0"] = timeit(c, q_row), timeit(c, q_batch)
            c.execute("INSERT INTO txclass.rules (pattern, label) SELECT '^nomatch' || g || ' ', 'Rule ' || g FROM generate_series(1, 1000) g")
            c.execute("SELECT txclass.classify_transaction('x')")  # reload the rules
            out["rules_loaded"] = c.execute("SELECT rules FROM txclass.model_info()").fetchone()[0]
            out["row_1000"], out["batch_1000"] = timeit(c, q_row), timeit(c, q_batch)
            out["md5"] = timeit(c, "SELECT count(md5(d)) FROM hits")
    finally:
        cluster("stop")
    write(out)


def write(o):
    lat = [s for _, _, s in o["switch"] if s is not None]
    never = sum(1 for _, _, s in o["switch"] if s is None)
    rows = "\n".join(f"| {i + 1} | {k} → {m} | {s * 1000:.0f} ms |" if s is not None else f"| {i + 1} | {k} → {m} | never |"
                     for i, (k, m, s) in enumerate(o["switch"]))
    md = f"""<!-- registry:begin (written by bench/registry.sh; edit bench/registry.py) -->
## Model registry: switch latency, class count, rules

One run of `bash bench/registry.sh` on this machine (2 cores), its own cluster, shared cache.

**Switch latency** (issue goal ≤ 1 s): 16 backends classify in a loop (one descriptor per
call, {o['busy_calls_per_s']:,.0f} calls/s together before the switches); each row is the time from the
activation's (or rollback's) commit until **all 16** have answered with the new model at least
once. Each backend notices the new generation at its next call and loads the model (on 2 cores,
16 loads queue).

| # | change | all 16 serving it after |
|---|---|---|
{rows}

Median {statistics.median(lat) * 1000:.0f} ms, worst {max(lat) * 1000:.0f} ms over {len(lat)} switches{f', {never} never completed' if never else ''};
{o['switch_calls']:,} calls during the run, {o['switch_errors']} errors, {o['switch_mislabelled']} results attributed to the wrong model.

**Class count** (372-class bundled model vs the 5,000-class fixture: same network, the output
scattered into 5,000 columns; cache off, `classify_batch` over 20,000 distinct descriptors):

| | 372 classes | 5,000 classes | ratio |
|---|---|---|---|
| first call (load + smoke inference) | {o['load_ms_v1']:.0f} ms | {o['load_ms_wide']:.0f} ms | {o['load_ms_wide'] / o['load_ms_v1']:.2f} |
| batch rows/s | {o['batch_rows_s_v1']:,.0f} | {o['batch_rows_s_wide']:,.0f} | {o['batch_rows_s_wide'] / o['batch_rows_s_v1']:.2f} |

**Rules ahead of the model** (200,000 rows of 1,000 distinct descriptors, all cache hits;
{o['rules_loaded']} rules, none matching, compiled into one RegexSet):

| | 0 rules | 1,000 rules | ratio |
|---|---|---|---|
| per-row `classify_transaction` | {o['row_0']:.3f} s | {o['row_1000']:.3f} s | {o['row_1000'] / o['row_0']:.2f} |
| `classify_batch` (rules run once per distinct descriptor) | {o['batch_0']:.3f} s | {o['batch_1000']:.3f} s | {o['batch_1000'] / o['batch_0']:.2f} |
| `md5()` per row, for scale | {o['md5']:.3f} s | | |
<!-- registry:end -->"""
    write_section(ROOT, "registry", md)


if __name__ == "__main__":
    main()
