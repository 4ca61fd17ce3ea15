"""A new connection's first classification, with real-size models: what it costs, what it reads.

For each model (the bundled one, MiniLM-L6, a BERT-base-sized export; see coldstart_models.py)
and each inference mode, on a cluster of its own (txclass preloaded, one inference worker):
the model is registered and activated, one connection classifies (the worker loads it), then

* 16 connections one after another: each connects and times its first classify_transaction;
  the bytes the backend read from files during that call (/proc/<pid>/io rchar) are recorded;
* 64 connections that open at once and classify (a pooler's restart, a failover): each one's
  first call, timed (not in backend mode with the BERT-base export: 64 sessions of 440 MB do not
  fit in this machine's memory).

Prints one JSON line per (model, mode). Usage:
    python bench/coldstart.py ROOT MODELS_DIR [label]
"""
import json
import os
import statistics
import sys
import threading
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
from harness import cluster, conninfo  # noqa: E402

ROOT, MODELS = sys.argv[1], sys.argv[2]
LABEL = sys.argv[3] if len(sys.argv) > 3 else ""
PORT = 54420


def rchar(pid):
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def first_call(ci, desc, out, lock):
    t0 = time.perf_counter()
    with psycopg.connect(ci, autocommit=True) as c:
        t1 = time.perf_counter()
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        before = rchar(pid)
        t2 = time.perf_counter()
        c.execute("SELECT txclass.classify_transaction(%s)", (desc,)).fetchone()
        t3 = time.perf_counter()
        read = rchar(pid) - before
    with lock:
        out.append({"connect_ms": (t1 - t0) * 1e3, "first_ms": (t3 - t2) * 1e3, "read_bytes": read})


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def run(model_dir, mode):
    name = "coldstart"
    flags = cluster("start", name, PORT, {"TXCLASS_CLUSTER_CONF": f"txclass.workers = 1\nmax_connections = 120\ntxclass.inference = '{mode}'"})
    try:
        ci = conninfo(flags)
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            c.execute("SELECT txclass.register_model('m', %s)", (model_dir,))
            c.execute("SELECT txclass.activate_model('m')")
            c.execute("SELECT txclass.classify_transaction('warm up')").fetchone()
        seq, lock = [], threading.Lock()
        for i in range(16):
            first_call(ci, f"STARBUCKS STORE {i}", seq, lock)
        size = os.path.getsize(os.path.join(model_dir, "model.onnx"))
        burst = []
        # backend mode builds a session per connection: 64 copies of a 440 MB model do not fit
        # in this machine's 24 GB, so that burst is left out
        if mode == "worker" or size < 200e6:
            threads = [threading.Thread(target=first_call, args=(ci, f"TESCO STORES {i}", burst, lock)) for i in range(64)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        fb = [x["first_ms"] for x in burst] or [float("nan")]
        return {
            "label": LABEL, "model": os.path.basename(model_dir), "model_mb": round(size / 1e6), "mode": mode,
            "seq_first_ms_p50": round(statistics.median(x["first_ms"] for x in seq), 1),
            "seq_first_ms_max": round(max(x["first_ms"] for x in seq), 1),
            "seq_read_mb_p50": round(statistics.median(x["read_bytes"] for x in seq) / 1e6, 2),
            "burst64_first_ms_p50": round(pct(fb, 0.5), 1),
            "burst64_first_ms_p99": round(pct(fb, 0.99), 1),
            "burst64_first_ms_max": round(max(fb), 1),
            "burst64_read_mb_total": round(sum(x["read_bytes"] for x in burst) / 1e6, 1),
        }
    finally:
        cluster("stop", name, PORT)


for model in [os.path.join(ROOT, "models", "txclass-merchants-v3"), os.path.join(MODELS, "minilm-l6"), os.path.join(MODELS, "bert-base")]:
    if not os.path.exists(os.path.join(model, "model.onnx")):
        continue
    for mode in os.environ.get("TXCLASS_COLDSTART_MODES", "worker backend").split():
        print(json.dumps(run(model, mode)), flush=True)
