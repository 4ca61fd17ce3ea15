#!/usr/bin/env python3
"""Shared inference workers against per-backend sessions, both modes in the same run, into
BENCHMARKS.md (section "worker"). For each model (the bundled one; MiniLM-L6 fp32 and int8 from
bench/minilm.sh when present), on one cluster, backend mode and two worker layouts: one worker
with every core as intra-op threads (txclass.workers = 1, worker_threads = cores), then, after a
restart, one single-threaded worker per core (workers = cores, worker_threads = 1):

  1. 16 pgbench clients, single-row INSERTs of real Oxford descriptors through the enrichment
     trigger, and per-row classify_transaction, with the cache off (every row a miss): rows/s
     (steady state: pgbench's progress intervals after the first, so per-backend model loads do
     not count);
  2. private memory (RssAnon, Pss) of 16 backends that each classified a row, plus the workers;
     txclass's own memory per backend (RssAnon after the first classification minus before);
  3. one client, per-row miss latency p50 / p99 (the Oxford descriptors, cache off);
  4. classify_batch of distinct generated rows from one backend (backend: 1 intra-op thread;
     worker: all cores);
  5. the hit path (bundled model only): UPDATE ... SET label = classify_transaction(d) over 1M
     rows with a warm cache.

    bench/worker.py <repo root> [model dir ...]    (bench/worker.sh runs set-up and minilm.sh)
"""
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
NAME, PORT = "benchworker", int(os.environ.get("TXCLASS_BENCH_PORT", "54346"))
SECONDS = int(os.environ.get("TXCLASS_BENCH_SECONDS", "25"))
HIT_ROWS = int(os.environ.get("TXCLASS_BENCH_HIT_ROWS", "1000000"))
CORES = os.cpu_count() or 2
CONF = f"""txclass.workers = 1
txclass.worker_threads = {CORES}
txclass.worker_models = 1
max_connections = 60"""
OUT = "/tmp/txclass-bench-worker"
BUNDLED = os.environ.get("TXCLASS_BENCH_BUNDLED_MODEL", "txclass-merchants-v3")
OXFORD = []


def letters(i):
    return "".join("abcdefghij"[int(c)] for c in str(i))


def desc(i):
    brands = ["STARBUCKS STORE", "TESCO STORES", "UBER TRIP", "SHELL OIL", "NETFLIX.COM", "AMZN MKTP US", "SQ *BLUE BOTTLE"]
    return f"{brands[i % len(brands)]} {letters(i)} {letters(i * 7 + 3)}"


def opts(mode, model, cache="on"):
    return f"-c txclass.inference={mode} -c txclass.model={model} -c txclass.cache={cache}"


def connect(ci, mode, model):
    c = psycopg.connect(ci, autocommit=True, options=opts(mode, model))
    c.execute("SET search_path = public, txclass")
    return c


def pgbench(flags, script, mode, model):
    path = os.path.join(OUT, "script.sql")
    open(path, "w").write(script)
    os.chmod(path, 0o644)
    env = dict(os.environ, PGOPTIONS=opts(mode, model, cache="off"))
    r = subprocess.run(["pgbench", *flags.split(), "-n", "-c", "16", "-j", "4", "-T", str(SECONDS), "-P", "5", "-f", path, "postgres"],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-800:])
    steady = [float(m.group(2)) for m in re.finditer(r"progress: ([\d.]+) s, ([\d.]+) tps", r.stderr) if float(m.group(1)) > 5]
    if steady:
        return statistics.mean(steady)
    m = re.search(r"tps = ([\d.]+)", r.stdout)
    return float(m.group(1)) if m else float("nan")


INSERT = r"""\set i random(1, {n})
INSERT INTO enrich_t (d) SELECT d FROM ox WHERE id = :i;
"""
SCALAR = r"""\set i random(1, {n})
SELECT txclass.classify_transaction(d) FROM ox WHERE id = :i;
"""


def mem_kb(pid):
    status = open(f"/proc/{pid}/status").read()
    anon = int(re.search(r"RssAnon:\s+(\d+)", status).group(1))
    pss = int(re.search(r"^Pss:\s+(\d+)", open(f"/proc/{pid}/smaps_rollup").read(), re.M).group(1))
    return anon, pss


def memory(ci, mode, model, workers_pids):
    conns = [connect(ci, mode, model) for _ in range(16)]
    try:
        pids = [c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in conns]
        before = [mem_kb(p)[0] for p in pids]
        for k, c in enumerate(conns):
            c.execute("SELECT classify_transaction(%s)", (desc(900000 + k),))
        after = [mem_kb(p) for p in pids]
        workers = [mem_kb(p) for p in workers_pids()]
        own = statistics.median(a[0] - b for a, b in zip(after, before)) / 1024
        return {"anon_mb": (sum(a[0] for a in after) + sum(w[0] for w in workers)) / 1024,
                "pss_mb": (sum(a[1] for a in after) + sum(w[1] for w in workers)) / 1024,
                "own_mb": own, "worker_anon_mb": sum(w[0] for w in workers) / 1024}
    finally:
        for c in conns:
            c.close()


def latency(ci, mode, model, n=600):
    with connect(ci, mode, model) as c:
        c.execute("SET txclass.cache = off")
        c.execute("SELECT classify_transaction('warm up')")
        ts = []
        for i in range(n):
            t = time.perf_counter()
            c.execute("SELECT classify_transaction(%s)", (OXFORD[(i * 7919) % len(OXFORD)],))
            ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return ts[len(ts) // 2], ts[int(len(ts) * 0.99)]


def batch(ci, mode, model, rows):
    with connect(ci, mode, model) as c:
        c.execute("SET txclass.cache = off")
        c.execute("SELECT classify_transaction('warm up')")
        arr = [desc(2_000_000 + i) for i in range(rows)]
        t = time.perf_counter()
        c.execute("SELECT count(*) FROM classify_batch(%s)", (arr,))
        return rows / (time.perf_counter() - t)


def hit_path(ci, model):
    out = {}
    with connect(ci, "backend", model) as c:
        c.execute("DROP TABLE IF EXISTS hits")
        c.execute(f"""CREATE TABLE hits AS SELECT g AS id, (ARRAY['STARBUCKS STORE','TESCO STORES','UBER TRIP','SHELL OIL'])[1 + g % 4]
                      || ' ' || translate((g % 5000)::text, '0123456789', 'abcdefghij') AS d, NULL::text AS label
                      FROM generate_series(1, {HIT_ROWS}) g""")
        c.execute("VACUUM ANALYZE hits")
        c.execute("UPDATE hits SET label = classify_transaction(d)")  # warms the cache (5,000 distinct)
    for mode in ["backend", "worker", "backend", "worker"]:
        with connect(ci, mode, model) as c:
            t = time.perf_counter()
            c.execute("UPDATE hits SET label = classify_transaction(d)")
            out.setdefault(mode, []).append(time.perf_counter() - t)
    return {m: min(v) for m, v in out.items()}


def run_model(ci, flags, model, batch_rows, modes):
    """Each of `modes` ("backend", "worker") on the cluster as it is configured now; the worker
    figures (txclass.worker_stats summed over the workers) and the enrichment table's NULLs."""
    def worker_pids():
        with psycopg.connect(ci, autocommit=True) as c:
            return [r[0] for r in c.execute("SELECT pid FROM txclass.worker_stats WHERE pid IS NOT NULL")]
    res = {}
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("SELECT txclass.worker_stats_reset()")
        c.execute("DROP TABLE IF EXISTS enrich_t")
        c.execute("CREATE TABLE enrich_t (id bigserial PRIMARY KEY, d text)")
        c.execute("SELECT txclass.attach('enrich_t', 'd')")
    for mode in modes:
        r = {}
        r["insert_tps"] = pgbench(flags, INSERT.format(n=len(OXFORD)), mode, model)
        r["scalar_tps"] = pgbench(flags, SCALAR.format(n=len(OXFORD)), mode, model)
        r["mem"] = memory(ci, mode, model, worker_pids)
        r["p50"], r["p99"] = latency(ci, mode, model)
        r["batch"] = batch(ci, mode, model, batch_rows)
        res[mode] = r
        print(mode, model, r, flush=True)
    with psycopg.connect(ci, autocommit=True) as c:
        # a row the trigger could not classify has no outputs at all; an abstention has its model
        nulls, rows = c.execute("SELECT count(*) FILTER (WHERE txclass_model IS NULL), count(*) FROM enrich_t").fetchone()
        st = c.execute("SELECT sum(rows)::float8 / nullif(sum(runs), 0), max(queue_wait_p50_ms), max(queue_wait_p99_ms), "
                       "sum(backend_fallbacks), avg(busy_share) FROM txclass.worker_stats WHERE pid IS NOT NULL").fetchone()
    res["enrich_nulls"], res["enrich_rows"], res["worker_stats"] = nulls, rows, st
    return res


def layouts():
    """The worker layouts measured: (workers, threads each)."""
    return [(1, CORES)] + ([(CORES, 1)] if CORES > 1 else [])


def main():
    os.makedirs(OUT, exist_ok=True)
    os.chmod(OUT, 0o755)
    bundled = BUNDLED
    models = [(bundled, f"bundled {bundled} (1 MB int8, 372 classes)", 100_000)] if os.environ.get("TXCLASS_BENCH_BUNDLED", "1") == "1" else []
    for m in MODELS:
        size = os.path.getsize(os.path.join(m, "model.onnx")) / 1e6
        models.append((m, f"{os.path.basename(m)} ({size:.0f} MB)", 10_000))
    flags = sections.cluster(ROOT, "start", NAME, PORT, {"TXCLASS_CLUSTER_CONF": CONF})
    ci = sections.harness.conninfo(flags)
    results = {}  # (model label, layout) -> run_model result; backend figures under the first layout
    global OXFORD
    try:
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
        OXFORD = sections.load_oxford(ROOT, ci)
        for k, (workers, threads) in enumerate(layouts()):
            if k:
                with psycopg.connect(ci, autocommit=True) as c:
                    c.execute(f"ALTER SYSTEM SET txclass.workers = {workers}")
                    c.execute(f"ALTER SYSTEM SET txclass.worker_threads = {threads}")
                sections.cluster(ROOT, "restart", NAME, PORT)
            for model, label, batch_rows in models:
                results[(label, (workers, threads))] = run_model(ci, flags, model, batch_rows, ["backend", "worker"] if k == 0 else ["worker"])
        hits = hit_path(ci, bundled) if models and models[0][0] == bundled else {"backend": float("nan"), "worker": float("nan")}
    finally:
        sections.cluster(ROOT, "stop", NAME, PORT)
    first = layouts()[0]
    lay = " and ".join(f"`txclass.workers = {w}`, `txclass.worker_threads = {t}`" for w, t in layouts())
    lines = [
        "<!-- worker:begin (bench/worker.sh; rewritten by each run) -->",
        "## Shared inference worker vs per-backend sessions",
        "",
        f"One run of `bench/worker.sh` on this machine ({CORES} cores), both modes on the same cluster; worker mode in two "
        f"layouts, {lay} (a restart between them), `txclass.worker_models = 1`; backend mode: one intra-op "
        f"thread per backend, measured once. pgbench: 16 clients, {SECONDS} s, the {len(OXFORD):,} real Oxford descriptors picked at random "
        "with the cache off (every row a miss), steady state (progress intervals after the first 5 s). Latency: the same "
        "descriptors, one client, cache off. classify_batch: distinct generated descriptors (letters, ~12 word pieces). "
        "Memory: 16 connected backends that each classified one row, plus the worker processes. Ratios are worker ÷ backend.",
        "",
        "| model | workers × threads | 16-client single-row INSERT rows/s (trigger) | 16-client per-row miss rows/s | private memory RssAnon / Pss (16 backends + workers) | txclass memory per backend | 1-client miss latency p50 / p99 | classify_batch rows/s, one backend |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, label, batch_rows in models:
        b = results[(label, first)]["backend"]
        for w_t in layouts():
            r = results[(label, w_t)]
            w = r["worker"]
            lines.append(
                f"| {label} | {w_t[0]} × {w_t[1]} "
                f"| {b['insert_tps']:.0f} → {w['insert_tps']:.0f} (**{w['insert_tps'] / b['insert_tps']:.2f}×**) "
                f"| {b['scalar_tps']:.0f} → {w['scalar_tps']:.0f} (**{w['scalar_tps'] / b['scalar_tps']:.2f}×**) "
                f"| {b['mem']['anon_mb']:.0f} / {b['mem']['pss_mb']:.0f} MB → {w['mem']['anon_mb']:.0f} / {w['mem']['pss_mb']:.0f} MB "
                f"(**{w['mem']['anon_mb'] / b['mem']['anon_mb']:.2f}** / {w['mem']['pss_mb'] / b['mem']['pss_mb']:.2f}) "
                f"| {b['mem']['own_mb']:.1f} MB → {w['mem']['own_mb']:.1f} MB "
                f"| {b['p50']:.2f} / {b['p99']:.2f} ms → {w['p50']:.2f} / {w['p99']:.2f} ms (**{w['p50'] / b['p50']:.2f}** / {w['p99'] / b['p99']:.2f}) "
                f"| {batch_rows:,} rows: {b['batch']:.0f} → {w['batch']:.0f} (**{w['batch'] / b['batch']:.2f}×**) |")
    lines += ["", "Worker-side figures of the same run (`txclass.worker_stats` over the workers after each model's runs; rows the trigger left without outputs):", ""]
    for model, label, _ in models:
        for w_t in layouts():
            r = results[(label, w_t)]
            st = r["worker_stats"]
            lines.append(f"- {label}, {w_t[0]} × {w_t[1]}: mean rows per worker run {st[0]:.1f}, queue wait p50 {st[1]:.2f} ms / p99 {st[2]:.2f} ms, "
                         f"workers busy {100 * st[4]:.0f}% of the time, backend fallbacks {st[3]}; {r['enrich_rows']:,} rows inserted through the trigger, {r['enrich_nulls']} left without outputs; "
                         f"worker processes' RssAnon {r['worker']['mem']['worker_anon_mb']:.0f} MB")
    lines += ["", f"Hit path, `UPDATE hits SET label = classify_transaction(d)` over {HIT_ROWS:,} rows with a warm shared cache "
              f"(best of two each, {layouts()[-1][0]} × {layouts()[-1][1]}): backend {hits['backend']:.2f} s, worker {hits['worker']:.2f} s "
              f"(**{hits['worker'] / hits['backend']:.2f}×** the time): the cache answers before any worker is asked.",
              "<!-- worker:end -->"]
    sections.write_section(ROOT, "worker", "\n".join(lines))


if __name__ == "__main__":
    main()
