#!/usr/bin/env python3
"""The case against the alternative (issue 7, item 5), one run, into BENCHMARKS.md (section
"alternative"): label a table end to end (rows in, labels written back)

  * with txclass: `CALL txclass.backfill(table)` (classify_batch + UPDATE, committed batches);
  * with what a team would otherwise run: a Python HTTP inference service (onnxruntime, the same
    ONNX model and tokenizer, batched, no cache) and a client that reads the rows from Postgres
    with a server-side cursor, posts them to the service in batches of 512 and writes the labels
    back with one UPDATE ... FROM unnest(...) per batch;

on a stream with ~85% repeated descriptors and on an all-distinct one; and classify_transaction
over the table with and without parallel workers.

    bench/alternative.py <repo root> [rows]     (bench/alternative.sh runs set-up first)
"""
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort
import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sections  # noqa: E402
from sections import write_section  # noqa: E402
from tokenizers import Tokenizer

ROOT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from normalize import normalize  # noqa: E402
from enrich import streams  # noqa: E402

MODEL = os.path.join(ROOT, "models", "txclass-merchants-v1")
NAME, PORT, HTTP_PORT = "benchalt", int(os.environ.get("TXCLASS_BENCH_PORT", "54349")), 18080


class Service:
    """The inference service a team would write: normalize, tokenize, pad, run, argmax."""

    def __init__(self):
        cfg = json.load(open(os.path.join(MODEL, "config.json")))
        self.labels = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
        self.tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
        self.tok.enable_truncation(64)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.sess = ort.InferenceSession(os.path.join(MODEL, "model.onnx"), so, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.sess.get_inputs()}

    def classify(self, texts):
        enc = self.tok.encode_batch([normalize(t or "") for t in texts])
        width = max(1, max(len(e.ids) for e in enc))
        ids = np.zeros((len(enc), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = self.sess.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return [self.labels[i] for i in logits.argmax(axis=1)]


def serve(service):
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            out = json.dumps(service.classify(body)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass
    httpd = ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def client(ci, table):
    """Reads the rows, calls the service in batches, writes the labels back."""
    with psycopg.connect(ci) as read, psycopg.connect(ci, autocommit=True) as write:
        with read.cursor(name="rows") as cur:
            cur.itersize = 512
            cur.execute(f"SELECT id, descriptor FROM {table} ORDER BY id")
            while True:
                rows = cur.fetchmany(512)
                if not rows:
                    break
                req = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}/", data=json.dumps([r[1] for r in rows]).encode(),
                                             headers={"Content-Type": "application/json"})
                labels = json.loads(urllib.request.urlopen(req).read())
                write.execute(f"UPDATE {table} t SET label = u.l FROM unnest(%s::bigint[], %s::text[]) u(k, l) WHERE t.id = u.k",
                              ([r[0] for r in rows], labels))


def cluster(cmd):
    return sections.cluster(ROOT, cmd, NAME, PORT)


def main():
    hot, distinct = streams(N)
    flags = cluster("start").split()
    ci = f"host={flags[1]} port={flags[3]} user={flags[5]} dbname=postgres"
    o = {"rows": N}
    httpd = serve(Service())
    try:
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            for name, data in [("hot", hot), ("distinct", distinct)]:
                for who in ["tx", "alt"]:
                    t = f"{who}_{name}"
                    c.execute(f"CREATE TABLE {t} (id bigserial PRIMARY KEY, descriptor text, label text)")
                    with c.cursor().copy(f"COPY {t} (descriptor) FROM STDIN") as cp:
                        for d in data:
                            cp.write_row((d,))
                    c.execute(f"VACUUM ANALYZE {t}")
                c.execute(f"SELECT txclass.attach('tx_{name}', 'descriptor', label_column => 'label')")
        for name in ["hot", "distinct"]:
            with psycopg.connect(ci, autocommit=True) as c:
                c.execute("SELECT txclass.cache_reset()")
                c.execute("SET client_min_messages = warning")
                t = time.perf_counter()
                c.execute(f"CALL txclass.backfill('tx_{name}', batch_size => 10000)")
                o[f"tx_{name}"] = time.perf_counter() - t
                o[f"tx_{name}_labelled"] = c.execute(f"SELECT count(label) FROM tx_{name}").fetchone()[0]
            t = time.perf_counter()
            client(ci, f"alt_{name}")
            o[f"alt_{name}"] = time.perf_counter() - t
            with psycopg.connect(ci, autocommit=True) as c:
                o[f"alt_{name}_labelled"] = c.execute(f"SELECT count(label) FROM alt_{name}").fetchone()[0]
                o[f"agree_{name}"] = c.execute(f"SELECT avg((a.label = x.label)::int) FROM alt_{name} a JOIN tx_{name} x USING (id)").fetchone()[0]
            print(name, o[f"tx_{name}"], o[f"alt_{name}"], flush=True)
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("SET txclass.cache = off")
            for workers in [0, 2]:
                c.execute(f"SET max_parallel_workers_per_gather = {workers}")
                c.execute("SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0")
                t = time.perf_counter()
                c.execute("SELECT count(txclass.classify_transaction(descriptor)) FROM tx_distinct WHERE id <= 40000").fetchone()
                o[f"par_{workers}"] = time.perf_counter() - t
    finally:
        httpd.shutdown()
        cluster("stop")
    r = lambda k: N / o[k]  # noqa: E731
    md = f"""<!-- alternative:begin (written by bench/alternative.sh; edit bench/alternative.py) -->
## The case against the alternative: a Python inference service

One run of `bash bench/alternative.sh` on this machine (2 cores shared by Postgres, the service and
its client): label a {N:,}-row table end to end — rows in, labels written back. **txclass**:
`CALL txclass.backfill(table)` (cache emptied first). **Alternative**: a Python HTTP service
(`ThreadingHTTPServer`, onnxruntime with the same int8 ONNX model and tokenizer, normalization
twin, batched, no cache) and a client reading with a server-side cursor, posting batches of 512
and writing labels back with one `UPDATE … FROM unnest(…)` per batch.

| stream | txclass | alternative | txclass rows/s | alternative rows/s | **ratio** | same labels |
|---|---|---|---|---|---|---|
| ~85% repeated descriptors | {o['tx_hot']:.1f} s | {o['alt_hot']:.1f} s | {r('tx_hot'):,.0f} | {r('alt_hot'):,.0f} | **{o['alt_hot'] / o['tx_hot']:.1f}×** | {o['agree_hot']:.2%} |
| all distinct | {o['tx_distinct']:.1f} s | {o['alt_distinct']:.1f} s | {r('tx_distinct'):,.0f} | {r('alt_distinct'):,.0f} | **{o['alt_distinct'] / o['tx_distinct']:.1f}×** | {o['agree_distinct']:.2%} |

On real traffic, where descriptors repeat, most of txclass's lead is the cache and the per-batch
de-duplication after normalization; on all-distinct rows both spend their time in the same ONNX
model, and txclass's lead is what it saves in moving rows out of and back into Postgres.
The issue's goal (≥ 10×) is {'met' if o['alt_hot'] / o['tx_hot'] >= 10 else 'not met'} on the repeated stream and not on
all-distinct rows. Why the repeated stream tops out there: 15% of its rows ({0.15 * N:,.0f}) are strings
never seen before, and each must go through the model once; at txclass's all-distinct rate that alone
takes {0.15 * N / r('tx_distinct'):.1f} s, so even a perfect cache with zero other cost would be
{o['alt_hot'] / (0.15 * N / r('tx_distinct')):.1f}× the alternative. The lead grows with the hit ratio (the field's
93% would halve the misses) and with faster inference per miss, not with more caching.

**Parallel query**: `count(classify_transaction(descriptor))` over 40,000 distinct rows, cache
off: {o['par_0']:.1f} s without workers, {o['par_2']:.1f} s with 2 (**{o['par_0'] / o['par_2']:.2f}×** on 2 cores;
each worker loads its own session).
<!-- alternative:end -->"""
    write_section(ROOT, "alternative", md)


if __name__ == "__main__":
    main()
