#!/usr/bin/env python3
"""Out-of-process write-path tests, on a throwaway cluster of their own:

  1. COPY of 25,000 rows into an attached table: every row enriched, equal to
     classify_transaction, misses classified in batches of at most 10,000 rows during and at
     the end of the statement (never row by row), later repeats answered in place by the cache;
  2. backfill of 30,000 rows cancelled mid-way (pg_cancel_backend): returns promptly, the
     committed batches stay, nothing half-written; a second run resumes after the last
     committed key and finishes;
  3. inserts from another connection during a backfill are neither blocked for longer than a
     batch nor lost, and are enriched by the trigger;
  4. the progress table is visible to another connection while the backfill runs.

    test_enrich.py <repo root>
Prints 'enrich: N passed, M failed'.
"""
import os
import sys
import threading
import time

import psycopg

from harness import Checks, cluster

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
check = Checks("enrich")


DISTINCT = ("SELECT b || ' ' || translate(md5((g + {off})::text), '0123456789', 'ghijklmnop') "
            "FROM generate_series(1, {n}) g, LATERAL (SELECT (ARRAY['STARBUCKS STORE','TESCO STORES','UBER TRIP',"
            "'SHELL OIL','NETFLIX.COM','JOES DINER'])[1 + g % 6]) x(b)")


def test_copy(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("CREATE TABLE copied (id bigserial PRIMARY KEY, descriptor text)")
        c.execute("SELECT txclass.attach('copied', 'descriptor')")
        repeats = ["STARBUCKS STORE 1234", "TESCO STORES 6292"] * 500
        # 1,000 repeats in the first batch (misses then), 23,000 distinct, the same 1,000 at the
        # end (cache hits by then)
        rows = repeats + [r[0] for r in c.execute(DISTINCT.format(off=0, n=23000)).fetchall()] + repeats
        before = c.execute("SELECT batched, batches, row_by_row, in_place FROM txclass.enrichment_stats").fetchone()
        t = time.perf_counter()
        with c.cursor().copy("COPY copied (descriptor) FROM STDIN") as cp:
            for r in rows:
                cp.write_row((r,))
        secs = time.perf_counter() - t
        after = c.execute("SELECT batched, batches, row_by_row, in_place FROM txclass.enrichment_stats").fetchone()
        # enriched = has outputs: its model is set (an abstention has model, confidence and level, no label)
        n, labelled = c.execute("SELECT count(*), count(txclass_model) FROM copied").fetchone()
        wrong = c.execute("SELECT count(*) FROM copied WHERE txclass_label IS DISTINCT FROM txclass.classify_transaction(descriptor)").fetchone()[0]
    check("COPY of 25,000 rows: every row enriched", n == 25000 and labelled == 25000, f"{labelled}/{n} in {secs:.1f} s")
    check("COPY: outputs equal classify_transaction", wrong == 0, f"{wrong} differ")
    batched, batches, row_by_row, in_place = (after[i] - before[i] for i in range(4))
    check("COPY: misses classified in batches of at most 10,000 during and at the end of the statement, none row by row",
          batches == 3 and batched == 24000 and row_by_row == 0,
          f"{batched} rows in {batches} batches, {row_by_row} row by row")
    check("COPY: repeats after a batch are answered in place by the cache", in_place >= 1000, f"{in_place} in place")


def test_backfill_cancel_resume(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("CREATE TABLE history (id bigserial PRIMARY KEY, descriptor text)")
        c.execute(f"INSERT INTO history (descriptor) {DISTINCT.format(off=100000, n=30000)}")
        c.execute("SELECT txclass.attach('history', 'descriptor')")
    runner = psycopg.connect(ci, autocommit=True)
    pid = runner.info.backend_pid
    out = {}

    def run():
        t = time.monotonic()
        try:
            runner.execute("CALL txclass.backfill('history', batch_size => 1000)")
            out["finished"] = True
        except psycopg.errors.QueryCanceled:
            out["cancelled"] = True
        out["t_end"] = time.monotonic()
        out["t_start"] = t
    th = threading.Thread(target=run)
    th.start()
    # watch progress from another connection, and insert meanwhile
    watched, insert_ms = [], []
    with psycopg.connect(ci, autocommit=True) as w:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            row = w.execute("SELECT rows_done, batches FROM txclass.backfill_progress WHERE relid = 'history'::regclass").fetchone()
            if row:
                watched.append(row)
            t = time.monotonic()
            w.execute("INSERT INTO history (descriptor) VALUES ('STARBUCKS STORE ' || %s)", (str(len(insert_ms)),))
            insert_ms.append((time.monotonic() - t) * 1000)
            if row and row[1] >= 5:
                break
            time.sleep(0.05)
        t_cancel = time.monotonic()
        w.execute("SELECT pg_cancel_backend(%s)", (pid,))
    th.join(60)
    runner.close()
    cancel_s = out.get("t_end", float("inf")) - t_cancel
    check("progress is visible to another connection during the backfill", len(watched) >= 2 and watched[-1][0] > 0,
          f"last seen {watched[-1] if watched else None}")
    check("pg_cancel_backend stops the backfill within 1 s", out.get("cancelled") and cancel_s < 1.0, f"{cancel_s:.2f} s")
    check("inserts during the backfill are not blocked", insert_ms and max(insert_ms) < 5000,
          f"{len(insert_ms)} inserts, slowest {max(insert_ms):.0f} ms")
    with psycopg.connect(ci, autocommit=True) as c:
        done, last_key, status = c.execute("SELECT rows_done, last_key, status FROM txclass.backfill_progress WHERE relid = 'history'::regclass").fetchone()
        labelled_upto = c.execute("SELECT count(*) FILTER (WHERE txclass_model IS NOT NULL), count(*) FROM history WHERE id <= %s::bigint",
                                  (last_key,)).fetchone()
        after = c.execute("SELECT count(*) FILTER (WHERE txclass_model IS NOT NULL) FROM history WHERE id > %s::bigint AND id <= 30000",
                          (last_key,)).fetchone()[0]
        check("after the cancel: every row up to the last committed key is labelled, none after it (nothing half-written)",
              status == "running" and labelled_upto[0] == labelled_upto[1] and after == 0,
              f"{done} rows done, last key {last_key}, {labelled_upto[0]}/{labelled_upto[1]} labelled up to it, {after} after")
        notices = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("CALL txclass.backfill('history', batch_size => 5000)")
        resumed = any("resuming" in n for n in notices)
        n, labelled = c.execute("SELECT count(*), count(txclass_model) FROM history").fetchone()
        status, done2 = c.execute("SELECT status, rows_done FROM txclass.backfill_progress WHERE relid = 'history'::regclass").fetchone()
        wrong = c.execute("SELECT count(*) FROM history WHERE txclass_label IS DISTINCT FROM txclass.classify_transaction(descriptor)").fetchone()[0]
    check("a second run resumes after the last committed batch and finishes", resumed and status == "done" and labelled == n,
          f"{labelled}/{n} labelled, {done2} rows counted, notices: {notices[:1]}")
    check("backfilled outputs equal classify_transaction", wrong == 0, f"{wrong} differ")


def main():
    try:
        flags = cluster("start", "enrich", 54373).split()
        ci = f"host={flags[1]} port={flags[3]} user={flags[5]} dbname=postgres"
        try:
            with psycopg.connect(ci, autocommit=True) as c:
                c.execute("CREATE EXTENSION txclass")
            test_copy(ci)
            test_backfill_cancel_resume(ci)
        finally:
            cluster("stop", "enrich", 54373)
    except Exception as e:  # noqa: BLE001
        check("enrich tests ran to the end", False, repr(e))
    check.finish()


if __name__ == "__main__":
    main()
