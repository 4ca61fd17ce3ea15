#!/usr/bin/env python3
"""Generated-input tests (issue 7, fuzzing part), on a throwaway cluster of their own:

  * 100,000 generated descriptors (random Unicode from every plane, control characters, emoji,
    combining marks, right-to-left text, whitespace, punctuation, empty strings, 1 MB strings,
    NULLs) through normalize_descriptor, classify_transaction, classify_transaction_detail and
    classify_batch (in 100,000-element arrays with NULLs), and 20,000 of them through
    classify_topk and logits: zero errors, and every answer is a label of the model or NULL;
  * a SQL_ASCII database: ASCII descriptors classify; bytes that are not UTF-8 get an ERROR (the
    documented behaviour) and the backend serves the next call;
  * no backend crash in the server log.

    test_fuzz.py <repo root>
Prints 'fuzz: N passed, M failed'.
"""
import os
import random
import sys

import psycopg

import harness
from harness import Checks

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
check = Checks("fuzz")


def cluster(cmd, port=54376):
    return harness.cluster(cmd, "fuzz", port)


def char(rng):
    r = rng.random()
    if r < 0.35:
        return rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 *#.-/&'")
    if r < 0.45:
        return chr(rng.randint(1, 31))                      # control characters (no NUL: text cannot hold it)
    if r < 0.55:
        return rng.choice(["\u200b", "\u200e", "\u202e", "\ufeff", "\u0301", "\u0308", "\u00a0", "\u3000"])
    if r < 0.65:
        return chr(rng.randint(0x1F300, 0x1FAFF))           # emoji
    while True:                                              # any plane, no surrogates
        c = rng.randint(0x80, 0x10FFFF)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def descriptors(n, rng):
    out = []
    for i in range(n):
        if i % 1000 == 0:
            out.append(None)
        elif i % 997 == 0:
            out.append("")
        elif i % 20011 == 0:
            out.append(("SQ *BLUE BOTTLE COF " * 60000)[: 1 << 20])   # 1 MB
        else:
            out.append("".join(char(rng) for _ in range(rng.randint(1, 60))))
    return out


def main():
    rng = random.Random(7)
    data = descriptors(100_000, rng)
    flags = cluster("start").split()
    ci = harness.conninfo(" ".join(flags))
    try:
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            labels = {r[0] for r in c.execute("SELECT label FROM txclass.labels()").fetchall()}
            c.execute("CREATE TABLE fuzz (i int, d text)")
            with c.cursor().copy("COPY fuzz (i, d) FROM STDIN") as cp:
                for i, d in enumerate(data):
                    cp.write_row((i, d))
            errors = []
            for name, sql in [
                ("normalize_descriptor", "SELECT count(txclass.normalize_descriptor(d)) FROM fuzz"),
                ("classify_transaction", "SELECT count(*) FROM fuzz WHERE txclass.classify_transaction(d) IS NOT NULL "
                                         "AND txclass.classify_transaction(d) <> ALL(%s)"),
                ("classify_transaction_detail", "SELECT count(*) FROM fuzz, LATERAL txclass.classify_transaction_detail(d) x "
                                                "WHERE x.label <> ALL(%s) OR x.confidence NOT BETWEEN 0 AND 1"),
                ("classify_batch", "SELECT count(*) FROM txclass.classify_batch((SELECT array_agg(d ORDER BY i) FROM fuzz)) b "
                                   "WHERE b.label <> ALL(%s)"),
                ("classify_topk", "SELECT count(*) FROM fuzz, LATERAL txclass.classify_topk(d, 3) t WHERE i < 20000 AND t.label <> ALL(%s)"),
                ("logits", "SELECT count(*) FROM fuzz WHERE i < 20000 AND d IS NOT NULL AND "
                           "coalesce(array_length(txclass.logits(d), 1), %s) <> %s"),
            ]:
                try:
                    if name == "logits":
                        bad = c.execute(sql, (len(labels), len(labels))).fetchone()[0]
                    elif "%s" in sql:
                        bad = c.execute(sql, (list(labels),)).fetchone()[0]
                    else:
                        c.execute(sql).fetchone()
                        bad = 0
                    check(f"{name}: generated input, no error, only the model's labels", bad == 0, f"{bad} bad answers")
                except psycopg.Error as e:
                    errors.append(name)
                    check(f"{name}: generated input, no error", False, str(e).splitlines()[0][:200])
            # SQL_ASCII: bytes that are not UTF-8
            c.execute("CREATE DATABASE sqlascii ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
        ai = ci.replace("dbname=postgres", "dbname=sqlascii")
        with psycopg.connect(ai, autocommit=True) as a:
            a.execute("CREATE EXTENSION txclass")
            ok_ascii = a.execute("SELECT txclass.classify_transaction('STARBUCKS STORE 01234 SEATTLE WA')").fetchone()[0]
            try:
                a.execute("SELECT txclass.classify_transaction(E'TESCO \\\\xff\\\\xfe STORES'::text)").fetchone()
                a.execute("SELECT txclass.classify_transaction(convert_from('\\x54455343 4fff'::bytea, 'SQL_ASCII'))").fetchone()
                err = None
            except psycopg.Error as e:
                err = str(e).splitlines()[0]
            after = a.execute("SELECT txclass.classify_transaction('TESCO STORES 6292')").fetchone()[0]
        # psycopg hands SQL_ASCII text back as bytes
        ok_ascii, after = [x.decode() if isinstance(x, bytes) else x for x in (ok_ascii, after)]
        check("SQL_ASCII database: ASCII descriptors classify", ok_ascii == "Starbucks", str(ok_ascii))
        check("SQL_ASCII database: bytes that are not UTF-8 get an ERROR, and the backend serves the next call",
              err is not None and "UTF-8" in err and after == "Tesco", f"{err} / then {after}")
        log = harness.server_log("fuzz")
        check("no backend crashed or panicked (server log)", "terminated by signal" not in log and "panicked" not in log,
              f"{len(log)} bytes of log")
    except Exception as e:  # noqa: BLE001
        check("fuzz tests ran to the end", False, repr(e)[:300])
    finally:
        cluster("stop")
    check.finish()


if __name__ == "__main__":
    main()
