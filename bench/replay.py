#!/usr/bin/env python3
"""The field's traffic, replayed (BENCHMARKS.md section "replay"): 64 pgbench clients, each
inserting one row per transaction into an attached table (the enrichment trigger classifies it),
85% of the rows a real Oxford descriptor already in the shared cache, 15% a descriptor never seen
(a real one with a new word of letters: normalization drops digits, not letters), at fixed offered
rates stepping up (`pgbench --rate`, `--latency-limit 50`: a transaction that could not start
within 50 ms of its schedule is skipped). Each run opens 64 new connections, so the first call of
each connection (the cold start) is in the figures.

For each model (the bundled one, MiniLM-L6 int8 and fp32 from bench/minilm.sh) and each offered
rate, backend mode and worker mode on the same cluster, started with the defaults (the worker
layout `txclass.workers = -1` picks). Reported: achieved rate, skipped share, late share (skipped
or over 50 ms), p50 / p99 / max latency from pgbench's per-transaction log (latency counts from the
scheduled start, so queueing in pgbench is in it), the measured cache hit share, mean rows per
worker run and the workers' busy share.

What bounds a rate: the same schedule with no trigger (a plain INSERT) and with the trigger and
every row a cache hit, on the bundled model's highest rate; and the cost of one miss, one client,
one row at a time: plain INSERT, trigger + cache hit, trigger + miss in each mode, and the
model's own run time for one row (the worker's busy time per run).

    bench/replay.py <repo root> [model dir ...]    (bench/replay.sh runs set-up and minilm.sh)
"""
import glob
import os
import re
import statistics
import subprocess
import sys
import time

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sections  # noqa: E402

ROOT = sys.argv[1]
MODELS = sys.argv[2:]
NAME, PORT = "benchreplay", int(os.environ.get("TXCLASS_BENCH_PORT", "54348"))
SECONDS = int(os.environ.get("TXCLASS_BENCH_SECONDS", "20"))
CLIENTS = 64
CORES = os.cpu_count() or 2
CONF = """max_connections = 100
txclass.cache_entries = 2000000"""
OUT = "/tmp/txclass-bench-replay"
BUNDLED = os.environ.get("TXCLASS_BENCH_BUNDLED_MODEL", "txclass-merchants-v3")
# offered rates (tx/s) per model kind
RATES = {"bundled": [2000, 4000, 8000], "int8": [500, 1000, 2000], "fp32": [300, 600, 1000]}

SCRIPT = r"""\set r random(1, 100)
\set i random(1, {n})
\if :r <= 85
INSERT INTO replay_t (d) SELECT d FROM ox WHERE id = :i;
\else
INSERT INTO replay_t (d) SELECT d || ' ' || translate(nextval('fresh')::text, '0123456789', 'ghijklmnop') FROM ox WHERE id = :i;
\endif
"""
HITS = r"""\set i random(1, {n})
INSERT INTO replay_t (d) SELECT d FROM ox WHERE id = :i;
"""
PLAIN = r"""\set i random(1, {n})
INSERT INTO plain_t (d) SELECT d FROM ox WHERE id = :i;
"""
MISSES = r"""\set i random(1, {n})
INSERT INTO replay_t (d) SELECT d || ' ' || translate(nextval('fresh')::text, '0123456789', 'ghijklmnop') FROM ox WHERE id = :i;
"""


def opts(mode, model):
    return f"-c txclass.inference={mode} -c txclass.model={model}"


def load_oxford(ci):
    """The Oxford rows into table ox (sections.load_oxford), the sequence that numbers new
    descriptors, the attached table and a plain one."""
    rows = sections.load_oxford(ROOT, ci)
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("CREATE SEQUENCE fresh")
        c.execute("CREATE TABLE replay_t (id bigserial PRIMARY KEY, d text)")
        c.execute("SELECT txclass.attach('replay_t', 'd')")
        c.execute("CREATE TABLE plain_t (id bigserial PRIMARY KEY, d text)")
    return len(rows)


def warm(ci, model):
    """Every distinct Oxford descriptor into the shared cache for `model` (worker mode)."""
    with psycopg.connect(ci, autocommit=True, options=opts("worker", model)) as c:
        c.execute("SELECT count(*) FROM txclass.classify_batch(ARRAY(SELECT DISTINCT d FROM ox))")


def between_runs(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("TRUNCATE replay_t, plain_t")
        c.execute("CHECKPOINT")
        c.execute("SELECT txclass.worker_stats_reset()")
        return c.execute("SELECT hits, misses FROM txclass.cache_info()").fetchone()


def pgbench(flags, script, mode, model, rate=None, clients=CLIENTS, seconds=SECONDS, tag="run"):
    """One pgbench run; returns its figures (latencies in ms, from the per-transaction log)."""
    path = os.path.join(OUT, "script.sql")
    open(path, "w").write(script)
    os.chmod(path, 0o644)
    for f in glob.glob(os.path.join(OUT, "log*")):
        os.remove(f)
    env = dict(os.environ, PGOPTIONS=opts(mode, model))
    cmd = ["pgbench", *flags.split(), "-n", "-c", str(clients), "-j", str(min(4, clients)), "-T", str(seconds),
           "-l", "--log-prefix", os.path.join(OUT, "log"), "-f", path]
    if rate:
        cmd += ["-R", str(rate), "-L", "50"]
    r = subprocess.run([*cmd, "postgres"], capture_output=True, text=True, env=env, cwd=OUT)
    if r.returncode not in (0, 2):  # 2: some transactions failed; reported below
        raise RuntimeError(f"{tag}: {r.stderr[-800:]}")
    lat, skipped, timed = [], 0, []
    for f in glob.glob(os.path.join(OUT, "log*")):
        for line in open(f):
            p = line.split()
            if len(p) < 6:
                continue
            if p[2] == "skipped":
                skipped += 1
            else:
                ms = int(p[2]) / 1000.0
                lat.append(ms)
                # (scheduled start in s, latency ms): the end minus the latency
                timed.append((int(p[4]) + int(p[5]) / 1e6 - ms / 1e3, ms))
    lat.sort()
    # after the first 2 s: the 64 new connections' first calls are over
    t0 = min((t for t, _ in timed), default=0.0)
    steady = sorted(ms for t, ms in timed if t >= t0 + 2.0)
    done = len(lat)
    late = sum(1 for x in lat if x > 50.0) + skipped
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)

    def pct(q):
        return lat[min(done - 1, int(q * done))] if done else float("nan")
    return {"achieved": done / seconds, "skipped": skipped / max(1, done + skipped), "late": late / max(1, done + skipped),
            "p50": pct(0.50), "p99": pct(0.99), "max": lat[-1] if lat else float("nan"), "mean": statistics.mean(lat) if lat else float("nan"),
            "steady_p99": steady[min(len(steady) - 1, int(0.99 * len(steady)))] if steady else float("nan"),
            "steady_max": steady[-1] if steady else float("nan"),
            "failed": int(failed.group(1)) if failed else 0}


def worker_figures(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        return c.execute("""SELECT sum(rows)::float8 / nullif(sum(runs), 0), avg(busy_share), sum(runs)::float8, sum(backend_fallbacks)::bigint,
            sum(busy_share)
            FROM txclass.worker_stats WHERE pid IS NOT NULL""").fetchone()


def cache_share(ci, before):
    with psycopg.connect(ci, autocommit=True) as c:
        h, m = c.execute("SELECT hits, misses FROM txclass.cache_info()").fetchone()
    dh, dm = h - before[0], m - before[1]
    return dh / max(1, dh + dm)


def unclassified(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        return c.execute("SELECT count(*) FILTER (WHERE txclass_model IS NULL), count(*) FROM replay_t").fetchone()


def miss_cost(ci, flags, model, n):
    """One client, one row per transaction, 10 s each: mean latency of a plain INSERT, a trigger
    hit, a trigger miss in each mode; the model's own time for one row (worker busy time / runs)."""
    out = {}
    for tag, script, mode in [("plain", PLAIN, "worker"), ("hit", HITS, "worker"), ("miss_backend", MISSES, "backend"),
                              ("miss_worker", MISSES, "worker")]:
        between_runs(ci)
        t0 = time.monotonic()
        out[tag] = pgbench(flags, script.format(n=n), mode, model, clients=1, seconds=10, tag=tag)["mean"]
        if tag == "miss_worker":
            wall = time.monotonic() - t0
            _, _, runs, _, busy_sum = worker_figures(ci)
            # every worker's busy time (one client: one worker does it all) per run of one row
            out["inference"] = busy_sum * wall * 1e3 / max(1, runs) if busy_sum is not None else float("nan")
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    os.chmod(OUT, 0o777)
    models = [("bundled", BUNDLED, f"bundled {BUNDLED} (1 MB int8)")]
    for m in MODELS:
        kind = "int8" if "int8" in os.path.basename(m) else "fp32"
        size = os.path.getsize(os.path.join(m, "model.onnx")) / 1e6
        models.append((kind, m, f"MiniLM-L6 {kind} ({size:.0f} MB)"))
    flags = sections.cluster(ROOT, "start", NAME, PORT, {"TXCLASS_CLUSTER_CONF": CONF})
    ci = sections.harness.conninfo(flags)
    runs, bounds, costs = [], {}, {}
    try:
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            workers = c.execute("SELECT count(pid) FROM txclass.worker_stats").fetchone()[0]
            layout = c.execute("SELECT current_setting('txclass.workers'), current_setting('txclass.worker_threads')").fetchone()
        n = load_oxford(ci)
        for kind, model, label in models:
            warm(ci, model)
            for rate in RATES[kind]:
                for mode in ["backend", "worker"]:
                    before = between_runs(ci)
                    r = pgbench(flags, SCRIPT.format(n=n), mode, model, rate=rate, tag=f"{kind} {mode} {rate}")
                    r["hit_share"] = cache_share(ci, before)
                    r["mean_rows"], r["busy"], _, r["fallbacks"], _ = worker_figures(ci)
                    r["nulls"], r["rows"] = unclassified(ci)
                    runs.append((label, mode, rate, r))
                    print(label, mode, rate, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
            costs[label] = miss_cost(ci, flags, model, n)
            print(label, "cost", costs[label], flush=True)
        top = RATES["bundled"][-1]
        for tag, script in [("plain INSERT, no trigger", PLAIN), ("trigger, every row a cache hit", HITS)]:
            between_runs(ci)
            bounds[tag] = pgbench(flags, script.format(n=n), "worker", BUNDLED, rate=top, tag=tag)
            print(tag, bounds[tag], flush=True)
    finally:
        sections.cluster(ROOT, "stop", NAME, PORT)

    def row(label, mode, rate, r):
        batch = f"{r['mean_rows']:.1f} / {100 * r['busy']:.0f}%" if mode == "worker" and r["mean_rows"] else "–"
        return (f"| {label} | {mode} | {rate:,} | {r['achieved']:,.0f} | {100 * r['skipped']:.1f}% | {100 * r['late']:.1f}% "
                f"| {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:,.0f} | {r['steady_p99']:.1f} / {r['steady_max']:,.0f} "
                f"| {100 * r['hit_share']:.0f}% | {batch} |")
    lines = [
        "<!-- replay:begin (bench/replay.sh; rewritten by each run) -->",
        "## The field's traffic, replayed",
        "",
        f"One run of `bench/replay.sh` on this machine ({CORES} cores; pgbench, the server and the workers share them), "
        f"one cluster started with txclass's defaults (`txclass.workers` = {layout[0]}: {workers} workers, "
        f"`txclass.worker_threads` = {layout[1]}), the cache warmed with the {n:,} real Oxford rows' descriptors. "
        f"{CLIENTS} pgbench clients, {SECONDS} s per run, one single-row INSERT per transaction through the enrichment trigger: "
        "85% a real Oxford descriptor (its real frequency), 15% a descriptor never seen. `pgbench --rate` at the offered rate, "
        "`--latency-limit 50`: *skipped* could not start within 50 ms of its schedule; *late* is skipped or took over 50 ms. "
        "Latency from pgbench's per-transaction log, counted from the scheduled start. Each run opens 64 new connections: "
        "their first calls are in the figures; *after 2 s* leaves out transactions scheduled in the first 2 s (when those first "
        "calls happen). *rows/run / busy*: mean rows per worker run and the workers' busy share.",
        "",
        "| model | mode | offered tx/s | achieved | skipped | late | p50 ms | p99 ms | max ms | after 2 s: p99 / max ms | cache hits | rows/run / busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(*x) for x in runs]
    nulls = sum(r["nulls"] for *_, r in runs)
    failed = sum(r["failed"] for *_, r in runs)
    fallbacks = sum(r["fallbacks"] or 0 for *_, r in runs)
    lines += ["", f"Rows the trigger left without outputs over all runs: {nulls}; failed transactions: {failed}; "
              f"backend fallbacks in worker mode: {fallbacks}.", ""]
    lines += [f"**What bounds the rate** (bundled model's schedule, {top:,} tx/s offered, worker mode, same {CLIENTS} clients):", ""]
    lines += ["| schedule | achieved | skipped | late | p50 ms | p99 ms | max ms | after 2 s: p99 / max ms |", "|---|---|---|---|---|---|---|---|"]

    def brow(tag, r):
        return (f"| {tag} | {r['achieved']:,.0f} | {100 * r['skipped']:.1f}% | {100 * r['late']:.1f}% | {r['p50']:.1f} | {r['p99']:.1f} "
                f"| {r['max']:,.0f} | {r['steady_p99']:.1f} / {r['steady_max']:,.0f} |")
    for tag, r in bounds.items():
        lines.append(brow(tag, r))
    field = [r for label, mode, rate, r in runs if label == models[0][2] and mode == "worker" and rate == top]
    if field:
        lines.append(brow("the replay above (85% hits)", field[0]))
    lines += ["", "**Cost of one miss** (one client, one row per transaction, 10 s each, mean ms per transaction; "
              "*model run*: the workers' busy time per run, one row per run; *the rest*: what a worker-mode miss costs beyond "
              "a hit and the model's own run — tokenizing, the queue round trip, the wake-ups):", "",
              "| model | plain INSERT | trigger, cache hit | trigger, miss, backend mode | trigger, miss, worker mode | model run (worker) | the rest |",
              "|---|---|---|---|---|---|---|"]
    for label, c in costs.items():
        lines.append(f"| {label} | {c['plain']:.2f} | {c['hit']:.2f} | {c['miss_backend']:.2f} | {c['miss_worker']:.2f} | {c['inference']:.2f} "
                     f"| {c['miss_worker'] - c['hit'] - c['inference']:.2f} |")
    lines.append("<!-- replay:end -->")
    sections.write_section(ROOT, "replay", "\n".join(lines))


if __name__ == "__main__":
    main()
