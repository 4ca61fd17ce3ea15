#!/usr/bin/env python3
"""Shared inference workers (txclass.inference = 'worker'), on throwaway clusters of their own:

  1. same answers: every real Oxford descriptor through classify_batch, per-row
     classify_transaction_detail, classify_topk, logits, the enrichment trigger (statement batch
     and single-row INSERTs), backfill, evaluate and compare_models, in backend mode and in worker
     mode (cache off): identical; a worker-mode backend never loads ONNX Runtime;
  2. 16 concurrent clients on per-row misses: every answer equals backend mode's, and the worker
     batched rows of several backends together;
     a 200,000-row batch does not hold up single-row requests;
  3. statement_timeout and cancel while waiting: the statement stops, no queue slot leaks, the
     backend serves on;
  4. a stopped worker (SIGSTOP): txclass.worker_timeout bounds the wait, fallback = on answers from
     the backend with one WARNING, fallback = off raises an ERROR naming the setting; the trigger
     keeps the row either way;
  5. SIGTERM to the worker: it is back with a new pid, the server is not restarted;
  6. kill -9 of the worker under single-row INSERT load: Postgres restarts every backend (any
     process attached to shared memory that dies by a signal may have corrupted it); every
     committed row is there, the worker is back, backfill labels what was left NULL;
  7. model switches every second under pgbench load in worker mode: zero answers from the wrong
     model, including a switch to a model with 5,000 classes;
  8. a 4-slot queue under 16 clients: back-pressure (waits counted), every answer right;
  9. without shared_preload_libraries: one NOTICE, backend mode, same answers;
 10. only superusers change txclass.inference and the worker settings;
 11. two workers: a lone request wakes one worker (the same one, request after request), one
     large classify_batch is shared by both, and 16 clients get backend mode's answers from both;
 12. the defaults with preload (nothing set): txclass.inference = auto serves from the workers,
     one per core (at most 8); without preload auto is backend mode without a NOTICE;
 13. connection churn: 64 connections that open at once and classify at once, and a pooler-like
     pattern (connections recycled every 5 statements): every answer equals backend mode's, and no
     request stalls for seconds (no first call waits behind other connections' loads);
 14. execution_provider = 'cuda' in postgresql.conf: the default layout is one worker, which
     falls back to CPU without a GPU (server log) and serves.

    test_worker.py <repo root>
Prints 'worker: N passed, M failed'.
"""
import csv
import glob
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg

from harness import ROOT as HERE_ROOT, Checks, cluster, conninfo, maps_onnxruntime, server_log, three_models

ROOT = sys.argv[1] if len(sys.argv) > 1 else HERE_ROOT
FIX = "/tmp/txclass-worker-fixtures"
check = Checks("worker")
CONF = "txclass.workers = 1\ntxclass.worker_timeout = 5000"


def generated(n):
    """Held-out descriptors from the bundled model's generator (unseen cities and stores)."""
    sys.path.insert(0, os.path.join(ROOT, "models", "train"))
    from generate import make  # noqa: E402
    return [d for d, _ in make("test", n, 13)]


def letters(i):
    """A number as letters (normalization drops digits: these stay distinct)."""
    return "".join("abcdefghij"[int(ch)] for ch in str(i))


def oxford_descriptors():
    """Every merchant string of the Oxford card files, in file order (repeats kept)."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "oxford-pcard", "*.csv"))):
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for r in csv.DictReader(fh):
                d = r.get("Merchant") or r.get("MCH.MERCHANT NAME")
                if d:
                    out.append(d)
    return out


def connect(ci, **kw):
    c = psycopg.connect(ci, autocommit=True, **kw)
    c.execute("SET search_path = public, txclass")
    return c


def mode(c, m):
    c.execute(f"SET txclass.inference = '{m}'")
    c.execute("SET txclass.cache = off")


def answers(c, m, table):
    """Everything every classify path gives for `table`'s descriptors in mode `m`."""
    mode(c, m)
    out = {}
    out["batch"] = c.execute(f"""SELECT b.ordinality, b.label, b.category, b.confidence::text
        FROM classify_batch((SELECT array_agg(d ORDER BY id) FROM {table})) b ORDER BY 1""").fetchall()
    out["per_row"] = c.execute(f"""SELECT id, (x).label, (x).category, (x).confidence::text, (x).model, (x).source
        FROM (SELECT id, classify_transaction_detail(d) x FROM {table}) s ORDER BY id""").fetchall()
    out["topk"] = c.execute(f"""SELECT id, k.rank, k.label, k.confidence::text
        FROM {table}, LATERAL classify_topk(d, 3) k WHERE id % 17 = 0 ORDER BY 1, 2""").fetchall()
    out["logits"] = c.execute(f"SELECT id, logits(d)::text FROM {table} WHERE id % 29 = 0 ORDER BY id").fetchall()
    c.execute(f"DROP TABLE IF EXISTS enr_{m}")
    c.execute(f"CREATE TABLE enr_{m} (id int PRIMARY KEY, d text)")
    c.execute(f"SELECT txclass.attach('enr_{m}', 'd')")
    c.execute(f"INSERT INTO enr_{m} SELECT id, d FROM {table} WHERE id <= 4000")
    for i in range(4001, 4201):  # single-row INSERTs: the per-statement path with one miss each
        c.execute(f"INSERT INTO enr_{m} SELECT id, d FROM {table} WHERE id = %s", (i,))
    out["trigger"] = c.execute(f"""SELECT id, txclass_label, txclass_category, txclass_confidence::text
        FROM enr_{m} ORDER BY id""").fetchall()
    c.execute(f"DROP TABLE IF EXISTS bf_{m}")
    c.execute(f"CREATE TABLE bf_{m} (id int PRIMARY KEY, d text)")
    c.execute(f"INSERT INTO bf_{m} SELECT id, d FROM {table}")
    c.execute(f"SELECT txclass.attach('bf_{m}', 'd')")
    c.execute(f"CALL txclass.backfill('bf_{m}', batch_size => 1000)")
    out["backfill"] = c.execute(f"SELECT id, txclass_label, txclass_confidence::text FROM bf_{m} ORDER BY id").fetchall()
    # a gold column that does not depend on the mode (the first word of the descriptor)
    ev = c.execute(f"""SELECT txclass.evaluate('v1', 'SELECT d, initcap(split_part(lower(d), '' '', 1)) FROM {table}', store => false)""")
    out["evaluate"] = {k: v for k, v in ev.fetchone()[0].items() if k != "evaluated_at"}
    out["compare"] = c.execute(f"""SELECT descriptor, label_a, label_b, confidence_a::text, confidence_b::text, agree
        FROM txclass.compare_models('v1', 'relabelled', 'SELECT d FROM {table} WHERE id % 5 = 0') ORDER BY 1""").fetchall()
    return out


def slots_busy(ci):
    with connect(ci) as c:
        return c.execute("SELECT slots_busy FROM txclass.worker_stats LIMIT 1").fetchone()[0]


def worker_pid(ci):
    with connect(ci) as c:
        return c.execute("SELECT pid FROM txclass.worker_stats WHERE worker = 0").fetchone()[0]


def wait_for(cond, seconds=20.0):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if cond():
                return True
        except Exception:  # noqa: BLE001  (server restarting)
            pass
        time.sleep(0.2)
    return False


def rchar(pid):
    """Bytes process `pid` has read from files and sockets so far (/proc/<pid>/io)."""
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def test_new_connection_reads(ci):
    """A new connection's first classification in worker mode reads config.json and the parsed
    tokenizer, not the weights: the model's checksum comes from what a process of this server
    already verified over the same files (src/identity.rs), the tokenizer from its cache file."""
    with connect(ci) as c:
        mode(c, "worker")
        ref = c.execute("SELECT label, confidence FROM classify_transaction_detail('STARBUCKS STORE 77')").fetchone()
        d, checksum = c.execute("SELECT directory, checksum FROM model_info()").fetchone()
        data = c.execute("SELECT current_setting('data_directory')").fetchone()[0]
    weights = os.path.getsize(os.path.join(d, "model.onnx"))
    cache = os.path.join(data, "txclass_cache", "tokenizers", f"{checksum}.tokenizer")
    check("the parsed tokenizer is kept in the data directory, named by the model's checksum", os.path.exists(cache), cache)

    def first_call():
        with connect(ci) as c:
            mode(c, "worker")
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            before = rchar(pid)
            got = c.execute("SELECT label, confidence FROM classify_transaction_detail('STARBUCKS STORE 77')").fetchone()
            return got, rchar(pid) - before

    runs = [first_call() for _ in range(3)]
    check("a new connection's first classification reads less than a third of the weights (no hash of model.onnx)",
          all(r[0] == ref and r[1] < weights / 3 for r in runs), f"read {[r[1] for r in runs]} bytes; model.onnx {weights}")
    good = open(cache, "rb").read()
    with open(cache, "wb") as f:
        f.write(good[: len(good) // 2])
    got, _ = first_call()
    check("a damaged tokenizer cache file is not used: the same answer, and the file is written again",
          got == ref and open(cache, "rb").read() == good, f"{got} vs {ref}")


def test_same_answers(ci):
    real = oxford_descriptors()
    descs = real + generated(1500)
    with connect(ci) as c:
        c.execute("CREATE TABLE ox (id int PRIMARY KEY, d text)")
        with c.cursor().copy("COPY ox (id, d) FROM STDIN") as cp:
            for i, d in enumerate(descs, 1):
                cp.write_row((i, d))
        n, distinct = c.execute("SELECT count(*), count(DISTINCT normalize_descriptor(d)) FROM ox").fetchone()
        ref = answers(c, "backend", "ox")
        got = answers(c, "worker", "ox")
        for path in ref:
            same = ref[path] == got[path]
            detail = f"{len(ref[path]) if isinstance(ref[path], list) else 'json'} rows"
            if not same and isinstance(ref[path], list):
                diff = [(a, b) for a, b in zip(ref[path], got[path]) if a != b][:2]
                detail += f"; first differences {diff}"
            check(f"worker mode = backend mode: {path} ({len(real)} Oxford rows + 1500 generated, {distinct} distinct)",
                  same and n >= 5000, detail)
    with connect(ci) as c:
        mode(c, "worker")
        c.execute("SELECT classify_transaction('TESCO STORES 1')")
        info = c.execute("SELECT inference, onnxruntime_library FROM model_info()").fetchone()
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        check("model_info() in worker mode: served by the worker, no ONNX Runtime library in the backend",
              info[0] == "worker" and info[1] is None and maps_onnxruntime(pid) is False, f"{info}, maps={maps_onnxruntime(pid)}")
        mode(c, "backend")
        c.execute("SELECT classify_transaction('TESCO STORES 1')")
        info = c.execute("SELECT inference FROM model_info()").fetchone()
        check("SET txclass.inference = 'backend' switches the same connection back", info[0] == "backend", str(info))
    return ref


def per_row_reference(ci, descs):
    with connect(ci) as c:
        mode(c, "backend")
        return [c.execute("SELECT label, confidence::text FROM classify_transaction_detail(%s)", (d,)).fetchone() for d in descs]


def in_threads(n, fn):
    """Runs fn(i) for i in 0..n, each in a thread of its own; returns (results, errors)."""
    results, errors = [None] * n, []

    def one(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results, errors


def clients(ci, n, work):
    """Runs work(i, conn) in n threads, each with its own connection; returns their results."""
    def one(i):
        with connect(ci) as c:
            return work(i, c)
    return in_threads(n, one)


def distinct_descs(prefix, n):
    brands = ["TESCO STORES", "STARBUCKS", "SHELL OIL", "UBER TRIP", "NETFLIX.COM", "AMAZON UK MARKETPLACE", "RYMAN"]
    return [f"{brands[i % len(brands)]} {prefix} {letters(i)}" for i in range(n)]


def test_concurrent(ci):
    per = 150
    descs = distinct_descs("C", 16 * per)
    ref = per_row_reference(ci, descs)
    before = stats(ci)

    def work(i, c):
        mode(c, "worker")
        return [c.execute("SELECT label, confidence::text FROM classify_transaction_detail(%s)", (d,)).fetchone()
                for d in descs[i * per:(i + 1) * per]]
    t = time.time()
    results, errors = clients(ci, 16, work)
    secs = time.time() - t
    flat = [r for chunk in results if chunk for r in chunk]
    check("16 concurrent clients, per-row misses through the worker: every answer equals backend mode's",
          not errors and flat == ref, f"{len(flat)} rows in {secs:.1f} s; errors {errors[:2]}")
    after = stats(ci)
    reqs = after["requests"] - before["requests"]
    runs = after["runs"] - before["runs"]
    check("the worker batched requests of several backends together (runs < requests)",
          reqs >= 16 * per and 0 < runs < reqs, f"{reqs} requests in {runs} runs")


def test_no_starvation(ci):
    """Single-row requests are answered while one backend's large batch keeps the worker busy."""
    box = {}

    def big():
        with connect(ci) as c:
            mode(c, "worker")
            t = time.time()
            c.execute("SELECT count(*) FROM classify_batch((SELECT array_agg('SHOP ' || translate(md5((g + 99)::text), "
                      "'0123456789', 'ghijklmnop')) FROM generate_series(1, 200000) g))")
            box["big_s"] = time.time() - t
            box["big_end"] = time.time()
    th = threading.Thread(target=big)
    th.start()
    time.sleep(1.5)
    waits = []
    with connect(ci) as c:
        mode(c, "worker")
        for d in distinct_descs("N", 30):
            t = time.time()
            c.execute("SELECT classify_transaction(%s)", (d,))
            waits.append(time.time() - t)
    small_end = time.time()
    th.join(120)
    overlapped = box.get("big_end", 0) > small_end
    check("single-row requests are answered while a 200,000-row batch keeps the worker busy (not queued behind it)",
          overlapped and max(waits) < 1.0,
          f"slowest of 30 single rows {max(waits) * 1e3:.0f} ms, median {sorted(waits)[15] * 1e3:.1f} ms; the batch took {box.get('big_s', 0):.1f} s")


def stats(ci):
    with connect(ci) as c:
        r = c.execute("SELECT requests, runs, restarts, backend_fallbacks, queue_full_waits, pid FROM txclass.worker_stats WHERE worker = 0").fetchone()
    return dict(zip(["requests", "runs", "restarts", "fallbacks", "queue_full", "pid"], r))


def test_timeout_and_cancel(ci):
    with connect(ci) as c:
        mode(c, "worker")
        c.execute("SET statement_timeout = '400ms'")
        t = time.time()
        try:
            c.execute("SELECT count(*) FROM classify_batch((SELECT array_agg('SHOP ' || translate(md5(g::text), '0123456789', 'ghijklmnop')) FROM generate_series(1, 300000) g))")
            outcome = "finished"
        except psycopg.errors.QueryCanceled as e:
            outcome = str(e).strip()
        secs = time.time() - t
        check("statement_timeout stops a worker-mode batch while it waits", "statement timeout" in outcome and secs < 10,
              f"{outcome!r} after {secs:.1f} s")
        c.execute("RESET statement_timeout")
        ok = wait_for(lambda: slots_busy(ci) == 0, 30)
        check("its queue slots are reclaimed (none left busy)", ok, f"slots_busy={slots_busy(ci)}")
        label = c.execute("SELECT classify_transaction('TESCO STORES 6292')").fetchone()[0]
        check("the backend serves on after the timeout", label == "Tesco", str(label))
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        box = {}

        def long_one():
            try:
                with connect(ci) as c2:
                    mode(c2, "worker")
                    box["pid"] = c2.execute("SELECT pg_backend_pid()").fetchone()[0]
                    c2.execute("SELECT count(*) FROM classify_batch((SELECT array_agg('SHOP ' || translate(md5((g + 7)::text), '0123456789', 'ghijklmnop')) FROM generate_series(1, 300000) g))")
                    box["outcome"] = "finished"
            except psycopg.errors.QueryCanceled as e:
                box["outcome"] = str(e).strip()
        th = threading.Thread(target=long_one)
        th.start()
        wait_for(lambda: "pid" in box, 10)
        time.sleep(1.0)
        c.execute("SELECT pg_cancel_backend(%s)", (box.get("pid", pid),))
        th.join(30)
        check("pg_cancel_backend stops a waiting worker-mode batch", "cancel" in box.get("outcome", ""), repr(box.get("outcome")))
        check("and its slots are reclaimed too", wait_for(lambda: slots_busy(ci) == 0, 30), f"slots_busy={slots_busy(ci)}")


def test_stopped_worker(ci):
    pid = worker_pid(ci)
    descs = distinct_descs("S", 50)
    ref = per_row_reference(ci, descs)
    os.kill(pid, signal.SIGSTOP)
    try:
        notices = []
        with connect(ci) as c:
            c.add_notice_handler(lambda d: notices.append(d.message_primary))
            mode(c, "worker")
            c.execute("SET txclass.worker_timeout = 500")
            t = time.time()
            got = [c.execute("SELECT label, confidence::text FROM classify_transaction_detail(%s)", (d,)).fetchone() for d in descs]
            secs = time.time() - t
            warned = [n for n in notices if "worker" in n]
            check("a stopped worker: worker_timeout bounds the wait, the backend answers itself, right answers",
                  got == ref and secs < 5, f"{secs:.1f} s for {len(descs)} rows")
            check("... with one WARNING naming the cause", len(warned) == 1 and "worker_timeout" in warned[0], str(warned))
            mode_now = c.execute("SELECT inference FROM model_info()").fetchone()[0]
            check("model_info() says the backend served (fallback)", mode_now == "backend (worker fallback)", mode_now)
            c.execute("CREATE TABLE stopped (id int PRIMARY KEY, d text)")
            c.execute("SELECT txclass.attach('stopped', 'd')")
            c.execute("INSERT INTO stopped VALUES (1, 'SHELL OIL 99 STOPPED')")
        with connect(ci) as c:
            mode(c, "worker")
            c.execute("SET txclass.worker_timeout = 300")
            c.execute("SET txclass.worker_fallback = off")
            try:
                c.execute("SELECT classify_transaction('SHELL OIL 12345 FALLBACK OFF')")
                err = "no error"
            except psycopg.Error as e:
                err = str(e)
            check("fallback off: a clear ERROR naming txclass.worker_timeout", "worker_timeout" in err, err[:200])
            c.execute("INSERT INTO stopped VALUES (2, 'SHELL OIL 98 STOPPED')")
            n = c.execute("SELECT count(*) FROM stopped").fetchone()[0]
            check("fallback off: the trigger still keeps the row (NULL outputs, WARNING)", n == 2, f"{n} rows")
    finally:
        os.kill(pid, signal.SIGCONT)
    with connect(ci) as c:
        c.execute("CALL txclass.backfill('stopped')")
        nulls = c.execute("SELECT count(*) FROM stopped WHERE txclass_label IS NULL").fetchone()[0]
        check("after the worker resumes, backfill labels the rows left NULL", nulls == 0, f"{nulls} NULL")


def test_terminate(ci):
    # the worker has no database connection, so it is not in the proc array: pg_terminate_backend
    # does not reach it; SIGTERM from the OS (kill, pg_ctl kill TERM) does
    old = worker_pid(ci)
    before = stats(ci)["restarts"]
    with connect(ci) as keep:
        keeper = keep.execute("SELECT pg_backend_pid()").fetchone()[0]
        os.kill(old, signal.SIGTERM)
        back = wait_for(lambda: worker_pid(ci) not in (None, old), 20)
        still = keep.execute("SELECT pg_backend_pid()").fetchone()[0]
    s = stats(ci)
    check("SIGTERM to the worker: the postmaster starts a new worker, other backends keep their connections",
          back and still == keeper and s["restarts"] == before + 1, f"pid {old} -> {s['pid']}, restarts {before} -> {s['restarts']}")
    with connect(ci) as c:
        mode(c, "worker")
        label = c.execute("SELECT classify_transaction('STARBUCKS STORE 77 AFTER RESTART')").fetchone()[0]
        info = c.execute("SELECT inference FROM model_info()").fetchone()[0]
    check("the new worker serves", label == "Starbucks" and info == "worker", f"{label}, {info}")


def test_kill9(ci, name):
    with connect(ci) as c:
        c.execute("CREATE TABLE k9 (id int PRIMARY KEY, d text)")
        c.execute("SELECT txclass.attach('k9', 'd')")
        c.execute("ALTER DATABASE postgres SET txclass.inference = 'worker'")
    committed, lock, stop = set(), threading.Lock(), threading.Event()
    errors = []

    def inserter(k):
        i = k
        while not stop.is_set():
            try:
                with psycopg.connect(ci, autocommit=True) as c:
                    c.execute("SET synchronous_commit = on")  # the cluster runs with it off
                    while not stop.is_set():
                        try:
                            c.execute("INSERT INTO k9 VALUES (%s, %s)", (i, f"UBER TRIP {letters(i)} HELP.UBER.COM"))
                            with lock:
                                committed.add(i)
                        except psycopg.errors.UniqueViolation:
                            pass  # committed before the crash, acknowledgement lost
                        i += 8
            except psycopg.Error as e:
                errors.append(type(e).__name__)
                time.sleep(0.5)
    ts = [threading.Thread(target=inserter, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    time.sleep(3)
    old = worker_pid(ci)
    os.kill(old, signal.SIGKILL)
    time.sleep(6)
    stop.set()
    for t in ts:
        t.join(30)
    back = wait_for(lambda: worker_pid(ci) not in (None, old), 30)
    with connect(ci) as c:
        rows = {r[0] for r in c.execute("SELECT id FROM k9").fetchall()}
        c.execute("CALL txclass.backfill('k9')")
        nulls = c.execute("SELECT count(*) FROM k9 WHERE txclass_label IS NULL").fetchone()[0]
        c.execute("ALTER DATABASE postgres RESET txclass.inference")
    log = server_log(name)
    restarted = "terminated by signal 9" in log and "all server processes terminated; reinitializing" in log
    check("kill -9 of the worker: Postgres restarts every backend (documented), the clients reconnect",
          restarted and errors, f"{len(errors)} client errors ({sorted(set(errors))})")
    check("kill -9: every committed row is there", committed and committed <= rows, f"{len(committed)} committed, {len(rows)} in the table")
    check("kill -9: the worker is back and backfill labels every row", back and nulls == 0, f"back={back}, {nulls} NULL")


PGBENCH = r"""\set i random(1, 1000000000)
INSERT INTO switch_results (model, descriptor, label)
SELECT split_part(d.model, '@', 1), y.s, d.label
FROM (SELECT CASE WHEN :i % 2 = 0 THEN 'STARBUCKS STORE ' ELSE 'TESCO STORES ' END
             || translate(:i::text, '0123456789', 'abcdefghij') AS s) y,
     LATERAL txclass.classify_transaction_detail(y.s) d;
"""


def test_switch_under_load(ci, flags):
    with connect(ci) as c:
        c.execute("CREATE TABLE switch_results (model text, descriptor text, label text)")
        c.execute("ALTER DATABASE postgres SET txclass.inference = 'worker'")
    script = "/tmp/txclass-worker-pgbench.sql"
    open(script, "w").write(PGBENCH)
    os.chmod(script, 0o644)
    stop, switches = threading.Event(), []

    def switcher():
        names, k = ["relabelled", "wide", "v1"], 0
        while not stop.wait(1.0):
            with connect(ci) as c:
                c.execute("SELECT txclass.activate_model(%s)", (names[k % 3],))
            switches.append(names[k % 3])
            k += 1
    t = threading.Thread(target=switcher)
    t.start()
    r = subprocess.run(["pgbench", *flags.split(), "-n", "-c", "16", "-j", "4", "-T", "12", "-f", script, "postgres"],
                       capture_output=True, text=True)
    stop.set()
    t.join()
    with connect(ci) as c:
        rows, models = c.execute("SELECT count(*), count(DISTINCT model) FROM switch_results").fetchone()
        # the three models share one graph: each answer must be v1's label for the descriptor
        # under that model's names ('Starbucks' renamed in relabelled; wide keeps the names)
        c.execute("SET txclass.model = 'txclass-merchants-v1'")
        c.execute("""CREATE TABLE switch_ref AS WITH x AS (SELECT array_agg(DISTINCT descriptor) a FROM switch_results)
            SELECT x.a[b.ordinality] AS descriptor, b.label FROM x, LATERAL classify_batch(x.a) b""")
        c.execute("RESET txclass.model")
        wrong = c.execute("""SELECT count(*) FROM switch_results r JOIN switch_ref f USING (descriptor)
            WHERE r.label IS DISTINCT FROM CASE WHEN r.model = 'relabelled' AND f.label = 'Starbucks' THEN 'Starbucks (renamed)'
                                               ELSE f.label END""").fetchone()[0]
        c.execute("ALTER DATABASE postgres RESET txclass.inference")
        c.execute("SELECT txclass.activate_model('v1')")
    tps = [x for x in r.stdout.splitlines() if x.startswith("tps")]
    check("model switch every second under 16 pgbench clients in worker mode: zero wrong-model answers",
          r.returncode == 0 and rows > 0 and models == 3 and wrong == 0,
          f"{len(switches)} switches, {rows} rows from {models} models, {wrong} wrong; {tps[0] if tps else r.stderr[-300:]}")


def test_queue_full():
    flags = cluster("start", "worker-q4", 54392, {"TXCLASS_CLUSTER_CONF": "txclass.workers = 1\ntxclass.worker_queue_slots = 4"})
    try:
        ci = conninfo(flags)
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
        descs = distinct_descs("Q", 16 * 600)
        with connect(ci) as c:
            mode(c, "backend")
            ref = c.execute("SELECT label, confidence::text FROM classify_batch(%s) ORDER BY ordinality", (descs,)).fetchall()

        def work(i, c):
            mode(c, "worker")
            return c.execute("SELECT label, confidence::text FROM classify_batch(%s) ORDER BY ordinality",
                             (descs[i * 600:(i + 1) * 600],)).fetchall()
        results, errors = clients(ci, 16, work)
        flat = [r for chunk in results if chunk for r in chunk]
        s = stats(ci)
        check("a 4-slot queue under 16 clients: back-pressure, no error, every answer right",
              not errors and flat == ref and s["queue_full"] > 0, f"{s['queue_full']} waits for a slot; errors {errors[:2]}")
    finally:
        cluster("stop", "worker-q4", 54392)


def test_no_preload():
    flags = cluster("start", "worker-nopre", 54393, {"TXCLASS_NO_PRELOAD": "1"})
    try:
        ci = conninfo(flags)
        notices = []
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            c.add_notice_handler(lambda d: notices.append(d.message_primary))
            c.execute("SET txclass.cache = off")
            ref = c.execute("SELECT txclass.classify_transaction('NETFLIX.COM 866-579-7172')").fetchone()[0]
            default = c.execute("SELECT current_setting('txclass.inference'), inference FROM txclass.model_info()").fetchone()
            quiet = list(notices)
            c.execute("SET txclass.inference = 'worker'")
            got = c.execute("SELECT txclass.classify_transaction('NETFLIX.COM 866-579-7172')").fetchone()[0]
            c.execute("SELECT txclass.classify_transaction('NETFLIX.COM 1')")
            mode_now = c.execute("SELECT inference FROM txclass.model_info()").fetchone()[0]
            workers = c.execute("SELECT count(*) FROM txclass.worker_stats").fetchone()[0]
        said = [n for n in notices if "shared_preload_libraries" in n and "inference" in n]
        check("without preload: the default (auto) is backend mode without a NOTICE",
              default == ("auto", "backend") and not quiet, f"{default}, {quiet}")
        check("without preload: worker mode gives one NOTICE and serves from the backend, same answer",
              len(said) == 1 and got == ref and mode_now == "backend" and workers == 0, f"{said}, {mode_now}")
    finally:
        cluster("stop", "worker-nopre", 54393)


def test_two_workers():
    flags = cluster("start", "worker-two", 54394, {"TXCLASS_CLUSTER_CONF": "txclass.workers = 2\ntxclass.worker_threads = 1"})
    try:
        ci = conninfo(flags)
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")

        def per_worker():
            with connect(ci) as c:
                return dict(c.execute("SELECT worker, requests FROM txclass.worker_stats WHERE pid IS NOT NULL").fetchall())
        wait_for(lambda: len(per_worker()) == 2)
        lone = distinct_descs("L", 300)
        ref = per_row_reference(ci, lone)
        before = per_worker()
        with connect(ci) as c:
            mode(c, "worker")
            got = [c.execute("SELECT label, confidence::text FROM classify_transaction_detail(%s)", (d,)).fetchone() for d in lone]
        after = per_worker()
        served = {w: after[w] - before.get(w, 0) for w in after}
        check("two workers, one client: every lone request is run by the same worker (one is woken, not both)",
              got == ref and min(served.values()) == 0 and max(served.values()) >= len(lone), f"requests per worker {served}")
        big = distinct_descs("B", 6000)
        with connect(ci) as c:
            mode(c, "backend")
            ref = c.execute("SELECT label, confidence::text FROM classify_batch(%s) ORDER BY ordinality", (big,)).fetchall()
            mode(c, "worker")
            before = per_worker()
            got = c.execute("SELECT label, confidence::text FROM classify_batch(%s) ORDER BY ordinality", (big,)).fetchall()
        after = per_worker()
        served = {w: after[w] - before.get(w, 0) for w in after}
        check("two workers: one backend's classify_batch is run by both, same answers as backend mode",
              got == ref and min(served.values()) >= 0.2 * sum(served.values()), f"requests per worker {served}")
        per = 100
        descs = distinct_descs("T", 16 * per)
        ref = per_row_reference(ci, descs)

        def work(i, c):
            mode(c, "worker")
            return [c.execute("SELECT label, confidence::text FROM classify_transaction_detail(%s)", (d,)).fetchone()
                    for d in descs[i * per:(i + 1) * per]]
        before = per_worker()
        results, errors = clients(ci, 16, work)
        after = per_worker()
        served = {w: after[w] - before.get(w, 0) for w in after}
        flat = [r for chunk in results if chunk for r in chunk]
        check("two workers, 16 clients: every answer equals backend mode's, both workers serve",
              not errors and flat == ref and min(served.values()) > 0, f"requests per worker {served}; errors {errors[:2]}")
    finally:
        cluster("stop", "worker-two", 54394)


def timed_calls(c, descs):
    """(answers, the slowest call in seconds) of classify_transaction_detail over `descs`."""
    got, slowest = [], 0.0
    for d in descs:
        t = time.perf_counter()
        got.append(c.execute("SELECT label, confidence::text FROM classify_transaction_detail(%s)", (d,)).fetchone())
        slowest = max(slowest, time.perf_counter() - t)
    return got, slowest


def test_defaults_and_churn():
    """Nothing set but preload (and room for 64 connections): the defaults serve from the workers;
    64 connections opening at once, then recycled like a pooler's, never wait seconds."""
    flags = cluster("start", "worker-default", 54395, {"TXCLASS_CLUSTER_CONF": "max_connections = 100"})
    try:
        ci = conninfo(flags)
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
        cores = os.cpu_count() or 1
        with connect(ci) as c:
            c.execute("SET txclass.cache = off")
            wait_for(lambda: c.execute("SELECT count(pid) FROM worker_stats").fetchone()[0] == min(cores, 8))
            setting = c.execute("SELECT current_setting('txclass.inference'), current_setting('txclass.workers')").fetchone()
            before = c.execute("SELECT sum(requests) FROM worker_stats").fetchone()[0]
            c.execute("SELECT classify_transaction('TESCO STORES 1')")
            after = c.execute("SELECT sum(requests) FROM worker_stats").fetchone()[0]
            running = c.execute("SELECT count(pid) FROM worker_stats").fetchone()[0]
            served = c.execute("SELECT inference FROM model_info()").fetchone()[0]
        check("defaults with preload: txclass.inference = auto serves from the workers, one per core (at most 8)",
              setting == ("auto", "-1") and served == "worker" and after > before and running == min(cores, 8),
              f"settings {setting}, model_info says {served}, {running} workers for {cores} cores, requests {before} -> {after}")

        n, per = 64, 3
        descs = distinct_descs("O", n * per)
        ref = per_row_reference(ci, descs)
        conns = [psycopg.connect(ci, autocommit=True) for _ in range(n)]  # all connected before any classifies
        go = threading.Barrier(n)

        def burst(i):
            c = conns[i]
            c.execute("SET search_path = public, txclass")
            c.execute("SET txclass.cache = off")
            go.wait()
            return timed_calls(c, descs[i * per:(i + 1) * per])
        results, errors = in_threads(n, burst)
        for c in conns:
            c.close()
        flat = [r for res in results if res for r in res[0]]
        slowest = max((res[1] for res in results if res), default=float("nan"))
        check("64 new connections classifying at once: backend mode's answers, no call waits a second or more",
              not errors and flat == ref and slowest < 1.0, f"slowest call {slowest * 1e3:.0f} ms; errors {errors[:2]}")

        clients_n, rounds, every = 16, 6, 5
        descs = distinct_descs("P", clients_n * rounds * every)
        ref = per_row_reference(ci, descs)

        def pooled(i):
            got, slowest = [], 0.0
            for r in range(rounds):  # a new server connection every `every` statements
                with connect(ci) as c:
                    c.execute("SET txclass.cache = off")
                    k = (i * rounds + r) * every
                    g, s = timed_calls(c, descs[k:k + every])
                    got += g
                    slowest = max(slowest, s)
            return got, slowest
        results, errors = in_threads(clients_n, pooled)
        flat = [r for res in results if res for r in res[0]]
        slowest = max((res[1] for res in results if res), default=float("nan"))
        check(f"pooler-like churn ({clients_n} clients, a new connection every {every} statements): backend mode's answers, "
              "no call waits a second or more", not errors and flat == ref and slowest < 1.0,
              f"{len(flat)} answers, slowest call {slowest * 1e3:.0f} ms; errors {errors[:2]}")
    finally:
        cluster("stop", "worker-default", 54395)


def test_cuda_layout():
    """txclass.execution_provider = 'cuda' in postgresql.conf and the default txclass.workers:
    one worker (one CUDA context), which falls back to CPU here (no GPU) and serves; a session
    is told once that the workers run another provider than it asked for."""
    flags = cluster("start", "worker-cuda", 54396, {"TXCLASS_CLUSTER_CONF": "txclass.execution_provider = 'cuda'"})
    try:
        ci = conninfo(flags)
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
        warnings = []
        with connect(ci) as c:
            c.add_notice_handler(lambda d: warnings.append(d.message_primary))
            c.execute("SET txclass.cache = off")
            wait_for(lambda: c.execute("SELECT count(pid) FROM worker_stats").fetchone()[0] >= 1)
            running = c.execute("SELECT count(pid) FROM worker_stats").fetchone()[0]
            got = [c.execute("SELECT classify_transaction(%s)", (d,)).fetchone()[0] for d in ["TESCO STORES 1", "SHELL OIL 2"]]
            served = c.execute("SELECT inference, execution_provider FROM model_info()").fetchone()
        said = [w for w in warnings if "inference workers run the model with 'cpu'" in w]
        check("execution_provider = cuda in postgresql.conf, default workers: one worker, CPU fallback here, answers, one WARNING",
              running == 1 and got == ["Tesco", "Shell"] and served == ("worker", "cpu") and len(said) == 1,
              f"{running} workers, {got}, {served}, warnings {warnings}")
        log = server_log("worker-cuda")
        check("the worker's CUDA fallback is in the server log", "has no CUDA execution provider" in log, log[-300:])
    finally:
        cluster("stop", "worker-cuda", 54396)


def test_privileges(ci):
    with connect(ci) as c:
        c.execute("CREATE ROLE worker_app LOGIN")
    app = ci.replace("user=postgres", "user=worker_app")
    denied = []
    with psycopg.connect(app, autocommit=True) as c:
        for stmt in ["SET txclass.inference = 'worker'", "SET txclass.worker_timeout = 100", "SET txclass.worker_fallback = off",
                     "ALTER SYSTEM SET txclass.workers = 4", "ALTER SYSTEM SET txclass.worker_threads = 8"]:
            try:
                c.execute(stmt)
            except psycopg.errors.InsufficientPrivilege:
                denied.append(stmt)
            except psycopg.Error as e:
                denied.append(f"{stmt}: {type(e).__name__}")
        label = c.execute("SELECT txclass.classify_transaction('TESCO STORES 1')").fetchone()[0]
    check("only superusers change the mode and the worker settings; an ordinary role still classifies",
          len(denied) == 5 and all(":" not in d for d in denied) and label == "Tesco", str(denied))


def main():
    name, port = "worker", 54391
    try:
        flags = cluster("start", name, port, {"TXCLASS_CLUSTER_CONF": CONF})
        try:
            ci = conninfo(flags)
            with psycopg.connect(ci, autocommit=True) as c:
                c.execute("CREATE EXTENSION txclass")
                three_models(c, FIX, root=ROOT)
            test_same_answers(ci)
            test_new_connection_reads(ci)
            test_concurrent(ci)
            test_no_starvation(ci)
            test_timeout_and_cancel(ci)
            test_stopped_worker(ci)
            test_terminate(ci)
            test_switch_under_load(ci, flags)
            test_privileges(ci)
            test_kill9(ci, name)
        finally:
            cluster("stop", name, port)
        test_queue_full()
        test_no_preload()
        test_two_workers()
        test_defaults_and_churn()
        test_cuda_layout()
    except Exception as e:  # noqa: BLE001
        check("worker tests ran to the end", False, repr(e))
    check.finish()


if __name__ == "__main__":
    main()
