#!/usr/bin/env python3
"""Logical replication and the write path (issue 14, item 4), on two clusters of their own.

  1. classify on the publisher: the outputs are columns of the row, so they replicate with it;
     a subscriber without txclass gets them as written (nothing to enable there);
  2. classify on the subscriber: replicated rows do not fire its triggers (the apply worker runs
     with session_replication_role = replica), so an attached table there keeps NULL outputs —
     until `ALTER TABLE ... ENABLE ALWAYS TRIGGER txclass_enrich`. The apply worker fires row
     triggers only, never statement triggers, so the row trigger classifies cache misses in place
     there instead of queueing them for a statement batch that would never run: every replicated
     row is enriched, equal to classify_transaction on the subscriber; rows that arrived before are
     filled by backfill.

    test_replication.py <repo root>
Prints 'replication: N passed, M failed'.
"""
import sys
import time

import psycopg

import harness
from harness import Checks

ROOT = sys.argv[1] if len(sys.argv) > 1 else harness.ROOT
check = Checks("replication")
PUB, SUB = ("replpub", 54381), ("replsub", 54382)
ROWS = 400


def wait_for(conn, sql, want, timeout=60):
    got = None
    t = time.time()
    while time.time() - t < timeout:
        got = conn.execute(sql).fetchone()[0]
        if got == want:
            return got
        time.sleep(0.2)
    return got


def descriptors(tag, n):
    # distinct strings: every one a cache miss; brands the model knows and businesses it does not
    brands = ["STARBUCKS STORE", "TESCO STORES", "SQ *BLUE BOTTLE COF", "NETFLIX.COM", "EYRE & ELLISTON LTD", "SMITH & LOW LTD"]
    return [f"{brands[i % len(brands)]} {tag}{i} OXFORD" for i in range(n)]


def main():
    env = {"TXCLASS_CLUSTER_CONF": "wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10"}
    try:
        pub = harness.conninfo(harness.cluster("start", *PUB, env=env))
        sub = harness.conninfo(harness.cluster("start", *SUB, env=env))
        pub_dsn = pub.replace("host=/tmp/txclass." + PUB[0], "host=127.0.0.1")
        with psycopg.connect(pub, autocommit=True) as p, psycopg.connect(sub, autocommit=True) as s:
            # 1. classify on the publisher
            p.execute("CREATE EXTENSION txclass")
            p.execute("CREATE TABLE card_txns (id bigint PRIMARY KEY, descriptor text)")
            p.execute("SELECT txclass.attach('card_txns', 'descriptor')")
            cols = ", ".join(f"{r[0]} {r[1]}" for r in p.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'card_txns'::regclass "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"))
            p.execute("CREATE PUBLICATION card_pub FOR TABLE card_txns")
            s.execute(f"CREATE TABLE card_txns ({cols}, PRIMARY KEY (id))")
            s.execute(f"CREATE SUBSCRIPTION card_sub CONNECTION '{pub_dsn}' PUBLICATION card_pub")
            with p.transaction():
                for i, d in enumerate(descriptors("p", ROWS)):
                    p.execute("INSERT INTO card_txns (id, descriptor) VALUES (%s, %s)", (i, d))
            n = wait_for(s, "SELECT count(*) FROM card_txns", ROWS)
            want = p.execute("SELECT array_agg(ROW(id, txclass_label, txclass_confidence, txclass_level, txclass_model)::text "
                             "ORDER BY id) FROM card_txns").fetchone()[0]
            got = s.execute("SELECT array_agg(ROW(id, txclass_label, txclass_confidence, txclass_level, txclass_model)::text "
                            "ORDER BY id) FROM card_txns").fetchone()[0]
            enriched = p.execute("SELECT count(txclass_model) FROM card_txns").fetchone()[0]
            check("classified on the publisher, the outputs replicate with the rows (a subscriber without txclass has them)",
                  n == ROWS and enriched == ROWS and got == want, f"{n} rows replicated, {enriched} enriched")
            s.execute("DROP SUBSCRIPTION card_sub")
            p.execute("DROP PUBLICATION card_pub")

            # 2. classify on the subscriber
            p.execute("CREATE TABLE plain_txns (id bigint PRIMARY KEY, descriptor text)")
            p.execute("CREATE PUBLICATION plain_pub FOR TABLE plain_txns")
            s.execute("CREATE EXTENSION txclass")
            s.execute("CREATE TABLE plain_txns (id bigint PRIMARY KEY, descriptor text)")
            s.execute("SELECT txclass.attach('plain_txns', 'descriptor')")
            s.execute(f"CREATE SUBSCRIPTION plain_sub CONNECTION '{pub_dsn}' PUBLICATION plain_pub")
            first = descriptors("a", ROWS)
            with p.transaction():
                for i, d in enumerate(first):
                    p.execute("INSERT INTO plain_txns VALUES (%s, %s)", (i, d))
            n = wait_for(s, "SELECT count(*) FROM plain_txns", ROWS)
            enriched = s.execute("SELECT count(txclass_model) FROM plain_txns").fetchone()[0]
            check("by default replicated rows do not fire the subscriber's triggers: they arrive without outputs",
                  n == ROWS and enriched == 0, f"{n} rows, {enriched} enriched")
            s.execute("ALTER TABLE plain_txns ENABLE ALWAYS TRIGGER txclass_enrich")
            s.execute("ALTER TABLE plain_txns ENABLE ALWAYS TRIGGER txclass_enrich_batch")
            second = descriptors("b", ROWS)
            with p.transaction():   # one transaction: one apply batch of ROWS rows, every one a miss
                for i, d in enumerate(second):
                    p.execute("INSERT INTO plain_txns VALUES (%s, %s)", (ROWS + i, d))
            n = wait_for(s, "SELECT count(*) FROM plain_txns", 2 * ROWS)
            time.sleep(0.5)
            new_enriched, wrong = s.execute(
                "SELECT count(txclass_model), count(*) FILTER (WHERE txclass_label IS DISTINCT FROM txclass.classify_transaction(descriptor)) "
                f"FROM plain_txns WHERE id >= {ROWS}").fetchone()
            check("with ENABLE ALWAYS TRIGGER every replicated row is enriched, misses included (the apply worker fires no "
                  "statement trigger, so the row trigger classifies them in place), equal to classify_transaction",
                  n == 2 * ROWS and new_enriched == ROWS and wrong == 0, f"{n} rows; {new_enriched} of {ROWS} enriched, {wrong} differ")
            p.execute(f"UPDATE plain_txns SET descriptor = 'NETFLIX.COM 866-579-7172 CA' WHERE id = {ROWS}")
            wait_for(s, f"SELECT descriptor FROM plain_txns WHERE id = {ROWS}", "NETFLIX.COM 866-579-7172 CA")
            time.sleep(0.3)
            upd = s.execute(f"SELECT txclass_label FROM plain_txns WHERE id = {ROWS}").fetchone()[0]
            check("a replicated UPDATE of the descriptor is classified again", upd == "Netflix", str(upd))
            s.execute("CALL txclass.backfill('plain_txns')")
            left = s.execute("SELECT count(*) FROM plain_txns WHERE txclass_model IS NULL").fetchone()[0]
            check("the rows that arrived before the triggers were enabled are filled by backfill on the subscriber",
                  left == 0, f"{left} rows without outputs")
            s.execute("DROP SUBSCRIPTION plain_sub")
    except Exception as e:  # noqa: BLE001
        check("replication tests ran to the end", False, repr(e)[-600:])
    finally:
        for name, port in (SUB, PUB):
            try:
                harness.cluster("stop", name, port)
            except Exception:  # noqa: BLE001
                pass
    check.finish()


if __name__ == "__main__":
    main()
