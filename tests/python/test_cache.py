#!/usr/bin/env python3
"""Out-of-process result-cache tests, each on a throwaway cluster of its own:

  1. eviction under a tiny capacity (txclass.cache_entries = 64): evictions counted, entries
     bounded, and every result still equals the uncached one;
  2. concurrent connections: while one connection holds its session open, a second hits what
     the first inserted; then 8 clients at once over overlapping descriptor sets on a tiny
     cache (constant eviction) all get exactly the uncached answers (no torn reads);
  3. without shared_preload_libraries: a per-backend cache and one NOTICE saying how to share it.

    test_cache.py <repo root>
Prints 'cache: N passed, M failed'.
"""
import contextlib
import os
import subprocess
import sys
import threading
import time

from harness import Checks, cluster

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
check = Checks("cache")


@contextlib.contextmanager
def throwaway_cluster(name, port, env):
    """A cluster of its own with txclass created; stopped and deleted afterwards."""
    conn = cluster("start", name, port, env)
    try:
        psql(conn, "CREATE EXTENSION txclass")
        yield conn
    finally:
        cluster("stop", name, port)


def psql(conn, sql, want_stderr=False):
    r = subprocess.run(["psql", *conn.split(), "-d", "postgres", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.strip()}")
    return (r.stdout, r.stderr) if want_stderr else r.stdout


DESCS = ("SELECT array_agg(b || ' ' || translate(md5((g + {off})::text), '0123456789', 'ghijklmnop') ORDER BY g) "
         "FROM generate_series(1, {n}) g, LATERAL (SELECT (ARRAY['WALMART','TESCO STORES','UBER TRIP','SHELL OIL',"
         "'NETFLIX.COM','JOES DINER'])[1 + g % 6]) x(b)")


def answers(conn, off, n, cache):
    q = (f"SET txclass.cache = {cache}; SELECT string_agg(coalesce(label,'') || ':' || coalesce(confidence::text,''), '|' ORDER BY ordinality) "
         f"FROM classify_batch(({DESCS.format(off=off, n=n)}))")
    return psql(conn, "SET search_path = public, txclass; " + q).strip()


def stats(conn):
    out = psql(conn, "SELECT shared, capacity, entries, hits, misses, inserts, evictions FROM txclass.cache_stats").strip()
    f = out.split("|")
    return {"shared": f[0] == "t", "capacity": int(f[1]), "entries": int(f[2]), "hits": int(f[3]),
            "misses": int(f[4]), "inserts": int(f[5]), "evictions": int(f[6])}


def test_tiny_capacity():
    with throwaway_cluster("cache-tiny", 54351, {"TXCLASS_CLUSTER_CONF": "txclass.cache_entries = 64"}) as conn:
        reference = answers(conn, 0, 1000, "off")
        first = answers(conn, 0, 1000, "on")
        second = answers(conn, 0, 1000, "on")
        s = stats(conn)
        check("tiny cache: capacity is the setting", s["capacity"] == 64, str(s))
        check("tiny cache: evictions counted, entries bounded", s["evictions"] > 0 and s["entries"] <= 64, str(s))
        check("tiny cache: results equal uncached ones (1000 descriptors, twice)", first == reference and second == reference)


def test_concurrent_connections():
    with throwaway_cluster("cache-conc", 54352, {"TXCLASS_CLUSTER_CONF": "txclass.cache_entries = 256"}) as conn:
        # connection A classifies 100 descriptors and keeps its session open
        a = subprocess.Popen(["psql", *conn.split(), "-d", "postgres", "-X", "-q", "-At", "-c",
                              f"SELECT count(*) FROM txclass.classify_batch(({DESCS.format(off=5000, n=100)}))",
                              "-c", "SELECT pg_sleep(4)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline and stats(conn)["entries"] < 100:
            time.sleep(0.1)
        before = stats(conn)
        b_out = psql(conn, f"SELECT count(*) FROM txclass.classify_batch(({DESCS.format(off=5000, n=100)}))")
        after = stats(conn)
        a_alive = a.poll() is None
        a.wait(timeout=30)
        check("second connection hits what the first inserted, while the first is open",
              a_alive and b_out.strip() == "100" and after["hits"] - before["hits"] == 100 and after["misses"] == before["misses"],
              f"before {before}, after {after}, first still open: {a_alive}")

        # 8 clients at once, overlapping sets, a 256-entry cache under constant eviction
        refs = {off: answers(conn, off, 300, "off") for off in (0, 150, 300, 450)}
        got, errors = [], []

        def client(i):
            try:
                for rep in range(3):
                    off = [0, 150, 300, 450][(i + rep) % 4]
                    got.append((off, answers(conn, off, 300, "on")))
            except Exception as e:  # noqa: BLE001
                errors.append(str(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s = stats(conn)
        wrong = sum(1 for off, ans in got if ans != refs[off])
        check("8 concurrent clients on an evicting cache get the uncached answers",
              not errors and len(got) == 24 and wrong == 0 and s["evictions"] > 0 and s["hits"] > 0,
              f"errors {errors[:1]}, runs {len(got)}, wrong {wrong}, {s}")


def test_without_preload():
    with throwaway_cluster("cache-local", 54353, {"TXCLASS_NO_PRELOAD": "1"}) as conn:
        out, err = psql(conn, "SELECT txclass.classify_transaction('STARBUCKS 1'); SELECT txclass.classify_transaction('STARBUCKS 2');"
                              "SELECT shared, hits, misses FROM txclass.cache_stats", want_stderr=True)
        lines = out.split()
        notices = err.count("NOTICE:  txclass is not in shared_preload_libraries")
        check("without shared_preload_libraries: works, per-backend cache, one NOTICE",
              lines[:2] == ["Starbucks", "Starbucks"] and lines[2] == "f|1|1" and notices == 1,
              f"out {lines}, notices {notices}: {err.strip()[:200]}")


for t in (test_tiny_capacity, test_concurrent_connections, test_without_preload):
    try:
        t()
    except Exception as e:  # noqa: BLE001
        check(t.__name__, False, str(e)[:500])
check.finish()
