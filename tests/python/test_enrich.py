#!/usr/bin/env python3
"""Out-of-process write-path tests, on a throwaway cluster of their own:

  1. COPY of 25,000 rows into an attached table: every row enriched, equal to
     classify_transaction, misses classified in batches of at most 10,000 rows during and at
     the end of the statement (only its first miss alone), later repeats answered in place by the cache;
  2. backfill of 30,000 rows cancelled mid-way (pg_cancel_backend): returns promptly, the
     committed batches stay, nothing half-written; a second run resumes after the last
     committed key and finishes;
  3. inserts from another connection during a backfill are neither blocked for longer than a
     batch nor lost, and are enriched by the trigger;
  4. the progress table is visible to another connection while the backfill runs;
  5. a 1,000,000-row COPY into a monthly-partitioned table (PRIMARY KEY (id, posted), 12
     partitions, attach on the parent): every row enriched, equal to classify_transaction, misses
     in statement batches (only the statement's first miss alone);
  6. backfill of a partitioned table with a composite key cancelled mid-way and resumed: rows of
     the partitions done before the cancel all labelled, the second run resumes and finishes;
  7. DDL during a running COPY into the partitioned table: ATTACH PARTITION (its lock does not
     wait for the COPY) runs while the COPY writes, RENAME COLUMN of an output waits for it; the
     COPY loses no row and no output, and later inserts are enriched into the renamed column;
  8. pg_dump of a database with the attached partitioned table restores into a fresh database
     without an error, with its record, the triggers on every partition, and enrichment working.

    test_enrich.py <repo root>
Prints 'enrich: N passed, M failed'.
"""
import json
import os
import subprocess
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
    # the statement's first miss is classified alone (a single-row INSERT writes its row once),
    # and its 499 repeats among the first thousand are then cache hits
    check("COPY: misses classified in batches of at most 10,000 during and at the end of the statement; only the statement's first miss alone",
          batches == 3 and row_by_row == 1 and batched >= 23000 and batched + row_by_row + in_place == 25000,
          f"{batched} rows in {batches} batches, {row_by_row} row by row, {in_place} in place")
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


PART_DDL = """CREATE TABLE {t} (id bigint NOT NULL, posted date NOT NULL, descriptor text, PRIMARY KEY (id, posted))
              PARTITION BY RANGE (posted);
              SELECT format('CREATE TABLE %I PARTITION OF {t} FOR VALUES FROM (%L) TO (%L)', '{t}_' || to_char(m, 'MM'), m, m + interval '1 month')
              FROM generate_series(date '2026-01-01', date '2026-12-01', interval '1 month') m"""


def partitioned(c, t):
    """A table partitioned by month over 2026 (12 partitions), composite key (id, posted)."""
    first, rest = PART_DDL.format(t=t).split(";", 1)
    c.execute(first)
    for (ddl,) in c.execute(rest).fetchall():
        c.execute(ddl)


def stream_rows(c, n, off):
    """n (id, posted, descriptor) rows, 85% repeats: 3 rows in 20 are first occurrences, the rest
    repeat one seen before."""
    distinct = [r[0] for r in c.execute(DISTINCT.format(off=off, n=n * 3 // 20 + 1)).fetchall()]
    rows, seen = [], 0
    for i in range(n):
        if i % 20 < 3 or seen == 0:
            d, seen = distinct[seen], seen + 1
        else:
            d = distinct[(i * 7919) % seen]
        rows.append((off + i, f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}", d))
    return rows


def test_partitioned_copy(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        partitioned(c, "ptx")
        c.execute("SELECT txclass.attach('ptx', 'descriptor', time_column => 'posted')")
        rows = stream_rows(c, 1_000_000, 0)
        before = c.execute("SELECT batched, batches, row_by_row FROM txclass.enrichment_stats").fetchone()
        t = time.perf_counter()
        with c.cursor().copy("COPY ptx (id, posted, descriptor) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        secs = time.perf_counter() - t
        after = c.execute("SELECT batched, batches, row_by_row FROM txclass.enrichment_stats").fetchone()
        n, enriched, parts = c.execute("SELECT count(*), count(txclass_model), count(DISTINCT tableoid) FROM ptx").fetchone()
        wrong = c.execute("SELECT count(*) FROM ptx WHERE txclass_label IS DISTINCT FROM txclass.classify_transaction(descriptor)").fetchone()[0]
    batched, batches, row_by_row = (after[i] - before[i] for i in range(3))
    check("COPY of 1,000,000 rows into a monthly-partitioned table: every row enriched, in all 12 partitions",
          n == 1_000_000 and enriched == n and parts == 12, f"{enriched}/{n} in {parts} partitions, {secs:.1f} s ({n / secs:,.0f} rows/s)")
    check("partitioned COPY: outputs equal classify_transaction", wrong == 0, f"{wrong} differ")
    check("partitioned COPY: misses classified in statement batches through the composite key, only the statement's first alone",
          batched > 0 and batches >= 1 and row_by_row == 1, f"{batched} rows in {batches} batches, {row_by_row} row by row")


def test_partitioned_backfill(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        partitioned(c, "phist")
        c.execute("INSERT INTO phist SELECT g, date '2026-01-01' + (g % 365)::int, d FROM "
                  f"(SELECT row_number() OVER () AS g, x AS d FROM ({DISTINCT.format(off=300000, n=24000)}) s(x)) q")
        c.execute("SELECT txclass.attach('phist', 'descriptor', time_column => 'posted')")
    runner = psycopg.connect(ci, autocommit=True)
    pid = runner.info.backend_pid
    out = {}

    def run():
        try:
            runner.execute("CALL txclass.backfill('phist', batch_size => 500)")
            out["finished"] = True
        except psycopg.errors.QueryCanceled:
            out["cancelled"] = True
    th = threading.Thread(target=run)
    th.start()
    with psycopg.connect(ci, autocommit=True) as w:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            row = w.execute("SELECT last_key FROM txclass.backfill_progress WHERE relid = 'phist'::regclass").fetchone()
            if row and row[0] and len(json.loads(row[0]).get("done", [])) >= 2:
                break
            time.sleep(0.05)
        w.execute("SELECT pg_cancel_backend(%s)", (pid,))
    th.join(60)
    runner.close()
    with psycopg.connect(ci, autocommit=True) as c:
        status, last_key = c.execute("SELECT status, last_key FROM txclass.backfill_progress WHERE relid = 'phist'::regclass").fetchone()
        state = json.loads(last_key)
        done_parts = [int(x) for x in state["done"]]
        full = c.execute("SELECT count(*) FILTER (WHERE txclass_model IS NULL) FROM phist WHERE tableoid::oid = ANY(%s)", (done_parts,)).fetchone()[0]
        check("partitioned backfill cancelled: the partitions done before it are fully labelled, the run stays resumable",
              out.get("cancelled") and status == "running" and len(done_parts) >= 2 and full == 0,
              f"{out}, status {status}, {len(done_parts)} partitions done, {full} unlabelled rows in them")
        notices = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("CALL txclass.backfill('phist', batch_size => 5000)")
        n, labelled = c.execute("SELECT count(*), count(txclass_model) FROM phist").fetchone()
        status = c.execute("SELECT status FROM txclass.backfill_progress WHERE relid = 'phist'::regclass").fetchone()[0]
        wrong = c.execute("SELECT count(*) FROM phist WHERE txclass_label IS DISTINCT FROM txclass.classify_transaction(descriptor)").fetchone()[0]
    check("partitioned backfill: the second run resumes where the first stopped and finishes, outputs equal classify_transaction",
          any("resuming" in m for m in notices) and status == "done" and labelled == n == 24000 and wrong == 0,
          f"{labelled}/{n} labelled, {wrong} differ, notices {notices[:1]}")


def test_ddl_during_copy(ci):
    with psycopg.connect(ci, autocommit=True) as c:
        partitioned(c, "pddl")
        c.execute("SELECT txclass.attach('pddl', 'descriptor', time_column => 'posted')")
        c.execute("CREATE TABLE pddl_next (LIKE pddl INCLUDING ALL)")
        rows = stream_rows(c, 300_000, 2_000_000)
    out = {}

    def copy():
        with psycopg.connect(ci, autocommit=True) as cc:
            t = time.monotonic()
            with cc.cursor().copy("COPY pddl (id, posted, descriptor) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            out["copy_end"] = time.monotonic()
            out["copy_s"] = out["copy_end"] - t
    th = threading.Thread(target=copy)
    th.start()
    with psycopg.connect(ci, autocommit=True) as d:
        while not d.execute("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'COPY pddl%' AND state = 'active')").fetchone()[0]:
            time.sleep(0.02)
        time.sleep(1.0)
        d.execute("ALTER TABLE pddl ATTACH PARTITION pddl_next FOR VALUES FROM ('2027-01-01') TO ('2027-02-01')")
        attached_at = time.monotonic()
        d.execute("ALTER TABLE pddl RENAME COLUMN txclass_label TO merchant")
        renamed_at = time.monotonic()
    th.join(600)
    with psycopg.connect(ci, autocommit=True) as c:
        n, enriched, wrong = c.execute("SELECT count(*), count(txclass_model), count(*) FILTER (WHERE merchant IS DISTINCT FROM "
                                       "txclass.classify_transaction(descriptor)) FROM pddl").fetchone()
        c.execute("INSERT INTO pddl VALUES (9000001, '2027-01-15', 'STARBUCKS AFTER DDL QQ'), (9000002, '2026-05-15', 'TESCO STORES AFTER DDL QQ')")
        later = c.execute("SELECT count(*) FILTER (WHERE merchant IS NOT DISTINCT FROM txclass.classify_transaction(descriptor) "
                          "AND txclass_model IS NOT NULL) FROM pddl WHERE id > 9000000").fetchone()[0]
        label_col = c.execute("SELECT label_column FROM txclass.monitored WHERE relid = 'pddl'::regclass").fetchone()[0]
    check("ATTACH PARTITION during a running COPY completes while the COPY still writes",
          "copy_end" in out and attached_at < out["copy_end"], f"attached {out.get('copy_end', 0) - attached_at:.1f} s before the COPY ended")
    check("RENAME COLUMN of an output during the COPY waits for it; the COPY loses no row and no output",
          renamed_at >= out.get("copy_end", 1e18) - 0.5 and n == 300_000 and enriched == n and wrong == 0,
          f"{enriched}/{n} enriched, {wrong} differ, COPY {out.get('copy_s', 0):.1f} s")
    check("after the DDL, inserts into the parent (the new partition too) are enriched into the renamed column",
          later == 2 and label_col == "merchant", f"{later}/2, label column {label_col}")


def test_dump_restore(ci, flags):
    dump = "/tmp/txclass-enrich-dump.sql"
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("CREATE DATABASE dumpsrc")
    src = ci.replace("dbname=postgres", "dbname=dumpsrc")
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("CREATE EXTENSION txclass")
        partitioned(c, "pdump")
        c.execute("SELECT txclass.attach('pdump', 'descriptor', time_column => 'posted')")
        c.execute("INSERT INTO pdump VALUES (1, '2026-01-05', 'STARBUCKS DUMP ONE QQ'), (2, '2026-07-05', 'TESCO STORES DUMP TWO QQ')")
    host, port, user = flags[1], flags[3], flags[5]
    r = subprocess.run(["pg_dump", "-h", host, "-p", port, "-U", user, "-d", "dumpsrc", "-f", dump], capture_output=True, text=True)
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("CREATE DATABASE dumpdst")
    rr = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", user, "-d", "dumpdst", "-f", dump],
                        capture_output=True, text=True)
    dst = ci.replace("dbname=postgres", "dbname=dumpdst")
    with psycopg.connect(dst, autocommit=True) as c:
        rec = c.execute("SELECT key_columns::text, descriptor_column FROM txclass.monitored WHERE relid = 'pdump'::regclass").fetchone()
        trig = c.execute("SELECT count(*) FILTER (WHERE tgname = 'txclass_enrich'), count(*) FILTER (WHERE tgname = 'txclass_enrich_batch') "
                         "FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM pg_partition_tree('pdump'))").fetchone()
        before = c.execute("SELECT batches FROM txclass.enrichment_stats").fetchone()[0]
        c.execute("INSERT INTO pdump VALUES (3, '2026-03-05', 'UBER TRIP RESTORED QQ'), (4, '2026-11-05', 'SHELL OIL RESTORED QQ')")
        batches = c.execute("SELECT batches FROM txclass.enrichment_stats").fetchone()[0] - before
        n, enriched, wrong = c.execute("SELECT count(*), count(txclass_model), count(*) FILTER (WHERE txclass_label IS DISTINCT FROM "
                                       "txclass.classify_transaction(descriptor)) FROM pdump").fetchone()
    check("pg_dump of an attached partitioned table restores without an error (psql ON_ERROR_STOP)",
          r.returncode == 0 and rr.returncode == 0, (r.stderr + rr.stderr)[-300:])
    check("restored: the record, the row trigger on all 13 tables and the statement trigger on each",
          rec == ("{id,posted}", "descriptor") and trig == (13, 13), f"{rec}, triggers {trig}")
    check("restored: inserts are enriched in a statement batch, old and new rows equal classify_transaction",
          n == 4 and enriched == 4 and wrong == 0 and batches == 1, f"{enriched}/{n}, {wrong} differ, {batches} batches")


def main():
    try:
        flags = cluster("start", "enrich", 54373).split()
        ci = f"host={flags[1]} port={flags[3]} user={flags[5]} dbname=postgres"
        try:
            with psycopg.connect(ci, autocommit=True) as c:
                c.execute("CREATE EXTENSION txclass")
            test_copy(ci)
            test_backfill_cancel_resume(ci)
            test_partitioned_copy(ci)
            test_partitioned_backfill(ci)
            test_ddl_during_copy(ci)
            test_dump_restore(ci, flags)
        finally:
            cluster("stop", "enrich", 54373)
    except Exception as e:  # noqa: BLE001
        check("enrich tests ran to the end", False, repr(e))
    check.finish()


if __name__ == "__main__":
    main()
