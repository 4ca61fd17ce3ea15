#!/usr/bin/env python3
"""txclass on a real Citus cluster (issue 28): a coordinator and two workers on loopback ports,
each with shared_preload_libraries = 'citus,txclass', built from ../shared/citus by
scripts/citus.sh (13.2.2 on PostgreSQL 15, 14.0.1 on 18).

  1. install: CREATE EXTENSION txclass on the coordinator reaches every node (Citus propagates
     it in a distributed transaction with two-phase commit, which txclass 0.4.0 refused);
  2. one model for the whole cluster: register/activate/rollback on the coordinator are seen by
     every node — in new connections and in connections that were open before — with the same
     deployment ids; an activation rolled back on the coordinator reaches no node; a worker
     stopped during an activation makes it fail, and nothing changes anywhere; a registry change
     made on a worker directly is refused; rules added on the coordinator answer on every node;
     labels given on the coordinator are served at once by the shards' triggers on every worker;
  3. enrichment on shards: a hash-distributed table and a reference table attached on the
     coordinator enrich every row where it is stored (multi-row INSERT, COPY, single-row
     INSERTs routed to one worker), with the answers a single node gives for the same Oxford
     descriptors, stamped with the active model; after an activation, new rows carry the new
     model on every shard; detach stops it on every shard.

    test_citus.py <repo root>
Prints 'citus: N passed, M failed'.
"""
import csv
import glob
import os
import sys
import time

import psycopg

import harness
from harness import Checks

ROOT = sys.argv[1] if len(sys.argv) > 1 else harness.ROOT
check = Checks("citus")
COORD, W1, W2, W3 = ("citus_c", 54391), ("citus_w1", 54392), ("citus_w2", 54393), ("citus_w3", 54394)
NODES = [COORD, W1, W2, W3]   # W3 joins late
CONF = "\n".join([
    "max_worker_processes = 32",
    "max_prepared_transactions = 100",   # Citus' two-phase commit on the workers
    "citus.shard_count = 8",
    "citus.log_remote_commands = off",
    os.environ.get("TXCLASS_CITUS_DEBUG_CONF", ""),
])
HIST = 40000   # rows of the backfill test (distinct: about 10 s of inference on 2 workers here)
ENV = {"TXCLASS_PRELOAD": "citus,txclass", "TXCLASS_CLUSTER_CONF": CONF}


def oxford_descriptors(n):
    """n distinct real merchant strings from the Oxford files."""
    seen, out = set(), []
    for path in sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "oxford-pcard", "*.csv"))):
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.DictReader(fh):
                d = (row.get("Merchant Name") or row.get("Merchant") or "").strip()
                if d and d not in seen:
                    seen.add(d)
                    out.append(d)
                    if len(out) == n:
                        return out
    return out


def connect(node):
    conn = psycopg.connect(harness.conninfo(f"-h /tmp/txclass.{node[0]} -p {node[1]} -U postgres"), autocommit=True)
    conn.execute("SET citus.override_table_visibility = off")   # let the checks see the shards on workers
    return conn


def one(conn, sql, *args):
    r = conn.execute(sql, args or None).fetchone()
    return r[0] if r else None


def serving(conn):
    """The model this connection serves now (its name in the registry, or the bundled default's)."""
    return one(conn, "SELECT model FROM txclass.model_info()")


def active(conn):
    return conn.execute("SELECT name, deployment FROM txclass.active_model").fetchone()


def expect_error(fn, *words):
    try:
        fn()
    except psycopg.Error as e:
        msg = str(e)
        return all(w in msg for w in words), msg.splitlines()[0][:200]
    return False, "no error"


def main():
    try:
        for n in NODES[:3]:
            harness.cluster("start", *n, env=ENV)
        c, w1, w2 = (connect(n) for n in NODES[:3])
        for conn in (c, w1, w2):
            conn.execute("CREATE EXTENSION citus")
            conn.execute("SET citus.override_table_visibility = off")
        c.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (COORD[1],))
        for w in (W1, W2):
            c.execute("SELECT citus_add_node('127.0.0.1', %s)", (w[1],))
        workers = [w1, w2]

        # ---- 1. install (the previous release, as a user upgrading has it) and upgrade ----------
        try:
            c.execute("CREATE EXTENSION txclass VERSION '0.4.0'")
            installed, detail = True, ""
        except psycopg.Error as e:
            installed, detail = False, str(e).splitlines()[0]
        versions = [one(x, "SELECT extversion FROM pg_extension WHERE extname = 'txclass'") for x in (c, w1, w2)]
        check("CREATE EXTENSION txclass on the coordinator installs it on every node (two-phase commit)",
              installed and versions == ["0.4.0"] * 3, detail or f"versions {versions}")
        current = one(c, "SELECT default_version FROM pg_available_extensions WHERE name = 'txclass'")
        try:
            c.execute("ALTER EXTENSION txclass UPDATE")
            detail = ""
        except psycopg.Error as e:
            detail = str(e).splitlines()[0]
        versions = [one(x, "SELECT extversion FROM pg_extension WHERE extname = 'txclass'") for x in (c, w1, w2)]
        check("ALTER EXTENSION txclass UPDATE on the coordinator updates every node",
              versions == [current] * 3 and current != "0.4.0", detail or f"{versions} (current {current})")
        roles = [one(x, "SELECT txclass._cluster_role()") for x in (c, w1, w2)]
        check("each node knows its role", roles == ["coordinator", "worker", "worker"], str(roles))

        # ---- 2. one model for the whole cluster --------------------------------------------
        early = [connect(W1), connect(W2)]   # open before any activation: must follow it
        for x in early:
            serving(x)
        c.execute("SELECT txclass.register_model('v2', 'txclass-merchants-v2')")
        c.execute("SELECT txclass.register_model('v3', 'txclass-merchants-v3')")
        registered = [sorted(r[0] for r in x.execute("SELECT name FROM txclass.models")) for x in (c, w1, w2)]
        check("register_model on the coordinator registers on every node", all(r == ["v2", "v3"] for r in registered), str(registered))
        c.execute("SELECT txclass.activate_model('v2')")
        acts = [active(x) for x in (c, w1, w2)]
        check("activate_model on the coordinator: every node has the same active deployment",
              len(set(acts)) == 1 and acts[0][0] == "v2", str(acts))
        fresh = [serving(connect(n)) for n in NODES[:3]]
        check("new connections on every node serve the activated model", len(set(fresh)) == 1 and "v2" in (fresh[0] or ""), str(fresh))
        olds = [serving(x) for x in early]
        check("connections open before the activation serve it from their next statement (published after COMMIT PREPARED)",
              all(o == fresh[0] for o in olds), str(olds))

        # a rolled-back activation reaches no node
        with connect(COORD) as t:
            t.execute("BEGIN")
            t.execute("SELECT txclass.activate_model('v3')")
            t.execute("ROLLBACK")
        acts = [active(x) for x in (c, w1, w2)]
        now = [serving(x) for x in early] + [serving(c)]
        check("an activation rolled back on the coordinator is served on no node",
              all(a[0] == "v2" for a in acts) and all("v2" in (s or "") for s in now), f"{acts} {now}")

        # an activation while a worker is down fails, and changes nothing anywhere
        harness.cluster("halt", *W2)
        ok, msg = expect_error(lambda: c.execute("SELECT txclass.activate_model('v3')"), "127.0.0.1")
        check("activate_model with a worker down fails with Citus' connection error", ok, msg)
        harness.cluster("start", *W2, env=ENV)
        w2 = connect(W2)
        workers = [w1, w2]
        early[1] = connect(W2)
        serving(early[1])
        acts = [active(x) for x in (c, w1, w2)]
        check("... and nothing changed on any node", all(a[0] == "v2" for a in acts), str(acts))
        prepared = [one(x, "SELECT count(*) FROM pg_prepared_xacts") for x in (c, w1, w2)]
        check("... and no prepared transaction is left in doubt", all(p == 0 for p in prepared), str(prepared))

        # a registry change on a worker directly would split the cluster: refused
        ok, msg = expect_error(lambda: w1.execute("SELECT txclass.activate_model('v3')"), "Citus worker", "coordinator")
        check("activate_model on a worker is refused (run it on the coordinator)", ok, msg)

        # switch and roll back: every node, every time
        c.execute("SELECT txclass.activate_model('v3')")
        a3 = [active(x) for x in (c, w1, w2)]
        s3 = [serving(x) for x in early]
        c.execute("SELECT txclass.rollback_model('test')")
        a2 = [active(x) for x in (c, w1, w2)]
        s2 = [serving(x) for x in early]
        check("activate then rollback_model: every node follows both, same deployments",
              len(set(a3)) == 1 and a3[0][0] == "v3" and len(set(a2)) == 1 and a2[0][0] == "v2"
              and all("v3" in s for s in s3) and all("v2" in s for s in s2), f"{a3} {a2} {s3} {s2}")

        # rules: added on the coordinator, answered on every node
        c.execute("INSERT INTO txclass.rules (pattern, label, category) VALUES ('^citus test shop', 'Citus Test Shop', 'Testing')")
        got = [one(x, "SELECT txclass.classify_transaction('CITUS TEST SHOP 42 OXFORD')") for x in (c, w1, w2)]
        check("a rule added on the coordinator answers on every node", got == ["Citus Test Shop"] * 3, str(got))
        c.execute("DELETE FROM txclass.rules WHERE label = 'Citus Test Shop'")
        got = [one(x, "SELECT txclass.classify_transaction('CITUS TEST SHOP 42 OXFORD')") for x in (c, w1, w2)]
        check("... and its deletion too", all(g != "Citus Test Shop" for g in got), str(got))

        # ---- 3. enrichment on shards ------------------------------------------------------
        descs = oxford_descriptors(600)
        c.execute("CREATE TABLE tx (id bigint PRIMARY KEY, account text, descriptor text)")
        c.execute("SELECT create_distributed_table('tx', 'id')")
        c.execute("SELECT txclass.attach('tx', 'descriptor')")
        shards = [one(x, "SELECT count(*) FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid "
                         "WHERE t.tgname ~ '^txclass_enrich_[0-9]+$' AND r.relname ~ '^tx_[0-9]+$'") for x in (w1, w2)]
        check("attach on a distributed table puts the trigger on every shard", sum(shards) == 8 and all(s > 0 for s in shards), str(shards))
        # a multi-row INSERT, then COPY, then single-row INSERTs (each routed to one worker)
        third = len(descs) // 3
        with c.cursor() as cur:
            cur.executemany("INSERT INTO tx (id, account, descriptor) VALUES (%s, %s, %s)",
                            [(i, f"acct{i % 37}", d) for i, d in enumerate(descs[:third])])
            with cur.copy("COPY tx (id, account, descriptor) FROM STDIN") as cp:
                for i, d in enumerate(descs[third:2 * third], start=third):
                    cp.write_row((i, f"acct{i % 37}", d))
            values = ", ".join(f"({i}, 'acct{i % 37}', %s)" for i in range(2 * third, len(descs)))
            cur.execute(f"INSERT INTO tx (id, account, descriptor) VALUES {values}", descs[2 * third:])
        rows = c.execute("SELECT id, descriptor, txclass_label, txclass_category, txclass_model, txclass_level FROM tx ORDER BY id").fetchall()
        unenriched = [r for r in rows if r[4] is None]
        check("every row inserted into the distributed table is enriched on its shard", len(rows) == len(descs) and not unenriched,
              f"{len(rows)} rows, {len(unenriched)} without a model stamp")
        single = {d: (l, cat) for d, l, cat in c.execute(
            "SELECT d, x.label, x.category FROM unnest(%s::text[]) d, LATERAL txclass.classify_transaction_detail(d) x", (descs,)).fetchall()}
        differ = [r for r in rows if (r[2], r[3]) != single.get(r[1])]
        check("the shards' answers equal the coordinator's classify_transaction_detail (one node) on the same descriptors",
              not differ, f"{len(differ)} differ, e.g. {differ[:2]}")
        stamps = {r[4] for r in rows}
        check("every row is stamped with the active model", len(stamps) == 1 and "v2" in next(iter(stamps)), str(stamps))

        c.execute("SELECT txclass.activate_model('v3')")
        c.execute("INSERT INTO tx (id, account, descriptor) SELECT 100000 + g, 'acctx', %s::text FROM generate_series(1, 40) g", (descs[0],))
        port = dict(c.execute("SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'tx'::regclass").fetchall())
        placed = {}
        for model, shard in c.execute("SELECT txclass_model, get_shard_id_for_distribution_column('tx', id) FROM tx WHERE id > 100000").fetchall():
            placed[(model, port.get(shard))] = placed.get((model, port.get(shard)), 0) + 1
        stamps = {m for m, _ in placed}
        check("after an activation on the coordinator, new rows on every shard carry the new model",
              len(stamps) == 1 and "v3" in next(iter(stamps)) and len({p for _, p in placed}) == 2, str(placed))

        # labels: given on the coordinator, on every node at commit, served at once by the shards'
        # triggers on every worker (the label was given against the active model, v3)
        c.execute("SELECT txclass.add_labels(ARRAY['CITUS LABELED SHOP 7'], ARRAY['Citus Labeled Shop'], ARRAY['Testing'])")
        on_nodes = [one(x, "SELECT model FROM txclass.labels WHERE normalized = 'citus labeled shop #'") for x in (c, w1, w2)]
        c.execute("INSERT INTO tx (id, account, descriptor) SELECT 200000 + g, 'acctl', 'CITUS LABELED SHOP 7' FROM generate_series(1, 40) g")
        placed = {}
        for label, cat, shard in c.execute("SELECT txclass_label, txclass_category, get_shard_id_for_distribution_column('tx', id) "
                                           "FROM tx WHERE id > 200000").fetchall():
            placed[(label, cat, port.get(shard))] = placed.get((label, cat, port.get(shard)), 0) + 1
        check("a label given on the coordinator is on every node and served at once by the shards' triggers on every worker",
              on_nodes == ["v3"] * 3 and {(l, k) for l, k, _ in placed} == {("Citus Labeled Shop", "Testing")}
              and len({p for _, _, p in placed}) == 2, f"{on_nodes} {placed}")
        c.execute("DELETE FROM txclass.labels WHERE normalized = 'citus labeled shop #'")
        left = [one(x, "SELECT count(*) FROM txclass.labels WHERE normalized = 'citus labeled shop #'") for x in (w1, w2)]
        check("... and its deletion reaches every worker", left == [0, 0], str(left))

        # a reference table: a copy on every node, each copy enriched where it is written
        c.execute("CREATE TABLE merchants_seen (descriptor text PRIMARY KEY)")
        c.execute("SELECT create_reference_table('merchants_seen')")
        c.execute("SELECT txclass.attach('merchants_seen', 'descriptor')")
        c.execute("INSERT INTO merchants_seen SELECT unnest(%s::text[])", (descs[:50],))
        per_node = [one(c, "SELECT count(*) FILTER (WHERE txclass_model IS NOT NULL) || '/' || count(*) FROM merchants_seen")]
        copies = []
        for x in (w1, w2):
            shard = one(x, "SELECT r.relname FROM pg_class r WHERE r.relname ~ '^merchants_seen_[0-9]+$' LIMIT 1")
            copies.append(one(x, f"SELECT count(*) FILTER (WHERE txclass_model IS NOT NULL) || '/' || count(*) FROM {shard}") if shard else None)
        check("a reference table is enriched on every node's copy", per_node == ["50/50"] and copies == ["50/50", "50/50"], f"{per_node} {copies}")

        # a shard split (block_writes) while a client inserts: the new shards have the trigger,
        # every row is enriched, none lost
        import threading
        stop, inserted, ins_errors = threading.Event(), [], []

        def inserter():
            with connect(COORD) as ic:
                i = 500000
                while not stop.is_set():
                    try:
                        ic.execute("INSERT INTO tx (id, account, descriptor) VALUES (%s, 'acct', %s)", (i, descs[i % len(descs)]))
                        inserted.append(i)
                    except psycopg.Error as e:
                        ins_errors.append(str(e).splitlines()[0])
                    i += 1
                    time.sleep(0.01)
        th = threading.Thread(target=inserter)
        th.start()
        time.sleep(0.5)
        shard, node = c.execute("SELECT s.shardid, n.nodeid FROM citus_shards s JOIN pg_dist_node n ON n.nodeport = s.nodeport "
                                "WHERE s.table_name = 'tx'::regclass ORDER BY s.shardid LIMIT 1").fetchone()
        lo, hi = c.execute("SELECT shardminvalue::int, shardmaxvalue::int FROM pg_dist_shard WHERE shardid = %s", (shard,)).fetchone()
        split_error = ""
        try:
            c.execute("SELECT citus_split_shard_by_split_points(%s, ARRAY[%s], ARRAY[%s, %s], shard_transfer_mode => 'block_writes')",
                      (shard, str(lo + (hi - lo) // 2), node, node))
        except psycopg.Error as e:
            split_error = str(e).splitlines()[0]
        time.sleep(0.5)
        stop.set()
        th.join()
        shards_now = one(c, "SELECT count(*) FROM citus_shards WHERE table_name = 'tx'::regclass")
        got = c.execute("SELECT count(*), count(*) FILTER (WHERE txclass_model IS NULL) FROM tx WHERE id >= 500000").fetchone()
        check("a shard split while a client inserts: 9 shards, every row inserted is there and enriched",
              not split_error and shards_now == 9 and got[0] == len(inserted) and got[1] == 0 and len(inserted) > 20,
              f"{split_error} {shards_now} shards, {got[0]} rows of {len(inserted)} inserted, {got[1]} unenriched; insert errors {ins_errors[:2]}")
        c.execute("INSERT INTO tx (id, account, descriptor) SELECT 600000 + g, 'acct', %s::text FROM generate_series(1, 200) g", (descs[5],))
        got = one(c, "SELECT count(*) FILTER (WHERE txclass_model IS NULL) FROM tx WHERE id > 600000")
        check("... and rows routed to the new shards afterwards are enriched", got == 0, f"{got} unenriched")

        # the cluster's state, from the coordinator
        info = c.execute("SELECT nodeport, model, error FROM txclass.cluster_model_info ORDER BY nodeport").fetchall()
        check("cluster_model_info: every node, one model", [r[0] for r in info] == [n[1] for n in NODES[:3]] and len({r[1] for r in info}) == 1
              and "v3" in (info[0][1] or ""), str(info))
        caches = c.execute("SELECT nodeport, shared, hits + misses FROM txclass.cluster_cache_stats ORDER BY nodeport").fetchall()
        check("cluster_cache_stats: every node's shared cache; the workers' answered the shards' rows",
              len(caches) == 3 and all(r[1] for r in caches) and all((r[2] or 0) > 0 for r in caches[1:]), str(caches))

        # worker mode on the workers: each node's shared inference workers answer its shards
        for x in (w1, w2):
            x.execute("ALTER SYSTEM SET txclass.inference = 'worker'")
            x.execute("SELECT pg_reload_conf()")
        time.sleep(1)
        fresh_descs = [f"{d} WORKERMODE" for d in descs[:120]]
        c.execute("INSERT INTO tx (id, account, descriptor) SELECT 650000 + o, 'a', d FROM unnest(%s::text[]) WITH ORDINALITY u(d, o)", (fresh_descs,))
        reqs = dict(c.execute("SELECT nodeport, sum(requests) FROM txclass.cluster_worker_stats GROUP BY 1").fetchall())
        wm = c.execute("SELECT descriptor, txclass_label, txclass_category FROM tx WHERE id > 650000 AND id < 700000").fetchall()
        # the reference from a backend session of the coordinator's own (the default is worker mode)
        c.execute("SET txclass.inference = 'backend'")
        ref = {d: (l, cat) for d, l, cat in c.execute(
            "SELECT d, x.label, x.category FROM unnest(%s::text[]) d, LATERAL txclass.classify_transaction_detail(d) x", (fresh_descs,)).fetchall()}
        c.execute("RESET txclass.inference")
        differ = [r for r in wm if (r[1], r[2]) != ref.get(r[0])]
        check("txclass.inference = 'worker' on the workers: their shared inference workers answer their shards' misses, with backend mode's answers",
              all((reqs.get(w[1]) or 0) > 0 for w in (W1, W2)) and len(wm) == 120 and not differ, f"requests {reqs}; {len(differ)} of {len(wm)} differ")
        for x in (w1, w2):
            x.execute("ALTER SYSTEM RESET txclass.inference")
            x.execute("SELECT pg_reload_conf()")

        # a worker stopped during inserts: Citus' error for its shards, nothing lost on the other
        harness.cluster("halt", *W2)
        on_w1 = [i for i in range(700000, 700400)
                 if one(c, "SELECT n.nodeport FROM pg_dist_shard_placement n WHERE n.shardid = get_shard_id_for_distribution_column('tx', %s)", i) == W1[1]][:30]
        ok_rows, errs = 0, []
        for i in on_w1:
            c.execute("INSERT INTO tx (id, account, descriptor) VALUES (%s, 'acct', %s)", (i, descs[i % len(descs)]))
            ok_rows += 1
        ok, msg = expect_error(lambda: c.execute("INSERT INTO tx (id, account, descriptor) SELECT 710000 + g, 'a', 'x'::text FROM generate_series(1, 50) g"),
                               "127.0.0.1")
        harness.cluster("start", *W2, env=ENV)
        w2 = connect(W2)
        got = c.execute("SELECT count(*), count(*) FILTER (WHERE txclass_model IS NULL) FROM tx WHERE id BETWEEN 700000 AND 700400").fetchone()
        lost = one(c, "SELECT count(*) FROM tx WHERE id BETWEEN 710000 AND 710050")
        check("a worker down during inserts: rows for the live worker are written and enriched, a statement that needs the down one fails whole (Citus' error)",
              ok and got == (len(on_w1), 0) and lost == 0 and len(on_w1) > 5, f"{msg}; {got} of {len(on_w1)}; {lost} rows of the failed statement")

        # backfill runs on the workers: cancelled, resumed, and re-classification after a switch
        c.execute("CREATE TABLE hist (id bigint PRIMARY KEY, descriptor text, at timestamptz)")
        c.execute("SELECT create_distributed_table('hist', 'id')")
        # distinct descriptors (a letters-only suffix survives normalization): every row a cache miss
        c.execute("INSERT INTO hist SELECT g, (%s::text[])[1 + g %% %s] || ' ' || translate(left(md5(g::text), 6), '0123456789', 'ghijklmnop'), "
                  "timestamptz '2017-01-01' + g * interval '1 minute' FROM generate_series(1, %s) g", (descs, len(descs), HIST))
        c.execute("SELECT txclass.attach('hist', 'descriptor', time_column => 'at')")
        c.execute("SELECT txclass.cache_reset()")
        for x in (w1, w2):
            x.execute("SELECT txclass.cache_reset()")
        c.execute("SET statement_timeout = '2s'")
        ok, msg = expect_error(lambda: c.execute("CALL txclass.backfill('hist', batch_size => 200)"), "cancel")
        c.execute("RESET statement_timeout")
        time.sleep(3)
        still = [one(x, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL txclass._backfill_shards%%'") for x in (w1, w2)]
        partial = one(c, "SELECT count(*) FILTER (WHERE txclass_model IS NOT NULL) FROM hist")
        check("a backfill cancelled on the coordinator stops on the workers, its committed batches kept",
              ok and still == [0, 0] and 0 < partial < HIST, f"{msg}; still running {still}; {partial} rows done")
        c.execute("CALL txclass.backfill('hist', batch_size => 500)")
        done = one(c, "SELECT count(*) FILTER (WHERE txclass_model IS NOT NULL) FROM hist")
        progress = c.execute("SELECT nodeport, relid, status, rows_done FROM txclass.cluster_backfill_progress WHERE tbl = 'hist'::regclass ORDER BY 1, 2").fetchall()
        resumed = [r for r in progress if r[2] == "done"]
        shards = one(c, "SELECT count(*) FROM citus_shards WHERE table_name = 'hist'::regclass")
        check("backfill resumed: every row enriched, on the workers (a progress row per shard, every one done)",
              done == HIST and len(progress) == shards and len(resumed) == shards and {r[0] for r in progress} == {W1[1], W2[1]},
              f"{done} rows; {len(resumed)} of {shards} shards done; {progress[:2]}…")
        sample = c.execute("SELECT descriptor, txclass_label, txclass_category FROM hist WHERE id % 40 = 0").fetchall()
        single = {d: (l, cat) for d, l, cat in c.execute(
            "SELECT d, x.label, x.category FROM unnest(%s::text[]) d, LATERAL txclass.classify_transaction_detail(d) x", ([r[0] for r in sample],)).fetchall()}
        differ = [r for r in sample if (r[1], r[2]) != single.get(r[0])]
        check("the backfilled answers equal one node's (a sample of 1 row in 40)", not differ and len(sample) > 100, f"{len(differ)} of {len(sample)} differ")
        c.execute("SELECT txclass.activate_model('v2')")
        c.execute("CALL txclass.backfill('hist', reclassify => true)")
        models = c.execute("SELECT txclass_model, count(*) FROM hist GROUP BY 1").fetchall()
        check("re-classification after a switch (backfill(..., reclassify => true)) rewrites every row with the new model on the workers",
              len(models) == 1 and "v2" in models[0][0], str(models))

        # drift of the distributed table equals drift of the same rows in a plain table
        c.execute("CREATE TABLE hist_local (LIKE hist INCLUDING ALL)")
        c.execute("INSERT INTO hist_local (id, descriptor, at) SELECT id, descriptor, at FROM hist")
        c.execute("SELECT txclass.attach('hist_local', 'descriptor', time_column => 'at')")
        c.execute("CALL txclass.backfill('hist_local')")
        d = {}
        for t in ("hist", "hist_local"):
            c.execute(f"SELECT txclass.refresh_drift('{t}')")
            d[t] = sorted(str(r[0]) for r in c.execute(f"SELECT to_jsonb(x) - 'relid' - 'tbl' FROM txclass.drift('{t}') x").fetchall())
        check("drift() of the distributed table equals drift() of the same rows on one node", d["hist"] == d["hist_local"] and len(d["hist"]) > 0,
              f"{len(d['hist'])} vs {len(d['hist_local'])} rows")

        # recurring payments and the review queue of a distributed table equal one node's
        c.execute("CREATE TABLE subs (id bigint PRIMARY KEY, account text, amount numeric, descriptor text, at date)")
        c.execute("SELECT create_distributed_table('subs', 'id')")
        c.execute("CREATE TABLE subs_local (LIKE subs INCLUDING ALL)")
        rows_sql = ("SELECT a * 100 + m, 'acct' || a, 5 + (a %% 7), (%s::text[])[1 + a %% 20], date '2017-01-03' + (a %% 20) + m * 30 "
                    "FROM generate_series(1, 40) a, generate_series(0, 11) m")
        for t in ("subs", "subs_local"):
            c.execute(f"SELECT txclass.attach('{t}', 'descriptor', time_column => 'at', account_column => 'account', amount_column => 'amount')")
            c.execute(f"INSERT INTO {t} (id, account, amount, descriptor, at) {rows_sql}", (descs[:20],))
            c.execute(f"SELECT txclass.refresh_recurring('{t}')")
        rec = {t: sorted(str(r[0]) for r in c.execute(f"SELECT to_jsonb(x) FROM txclass.recurring('{t}', date '2018-01-15') x").fetchall())
               for t in ("subs", "subs_local")}
        check("refresh_recurring + recurring() of a distributed table equal one node's", rec["subs"] == rec["subs_local"] and len(rec["subs"]) > 10,
              f"{len(rec['subs'])} vs {len(rec['subs_local'])} series")
        rq = {t: sorted(str(r[0]) for r in c.execute(f"SELECT to_jsonb(x) FROM txclass.review_queue('{t}', 30) x").fetchall())
              for t in ("hist", "hist_local")}
        check("review_queue() of a distributed table equals one node's", rq["hist"] == rq["hist_local"] and len(rq["hist"]) > 0,
              f"{len(rq['hist'])} vs {len(rq['hist_local'])} rows")

        # a partitioned distributed table: each partition's shards enrich, a partition added later too
        c.execute("CREATE TABLE ptx (id bigint, at date, descriptor text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)")
        c.execute("CREATE TABLE ptx_2017 PARTITION OF ptx FOR VALUES FROM ('2017-01-01') TO ('2018-01-01')")
        c.execute("SELECT create_distributed_table('ptx', 'id')")
        c.execute("SELECT txclass.attach('ptx', 'descriptor', time_column => 'at')")
        c.execute("CREATE TABLE ptx_2018 PARTITION OF ptx FOR VALUES FROM ('2018-01-01') TO ('2019-01-01')")
        c.execute("INSERT INTO ptx (id, at, descriptor) SELECT g, date '2017-06-01' + (g %% 400), (%s::text[])[1 + g %% %s] FROM generate_series(1, 800) g",
                  (descs, len(descs)))
        # (tableoid is the shard's: its name less the shard id is the partition's)
        got = c.execute("SELECT regexp_replace(tableoid::regclass::text, '_[0-9]+$', ''), count(*), count(*) FILTER (WHERE txclass_model IS NULL) "
                        "FROM ptx GROUP BY 1 ORDER BY 1").fetchall()
        check("a partitioned distributed table: rows in every partition (one created after attach too) enriched on their shards",
              [g[0] for g in got] == ["ptx_2017", "ptx_2018"] and all(g[2] == 0 for g in got) and sum(g[1] for g in got) == 800, str(got))

        # DDL on the distributed table: a renamed table and a renamed descriptor column keep enriching
        c.execute("ALTER TABLE tx RENAME TO tx_renamed")
        c.execute("ALTER TABLE tx_renamed RENAME COLUMN descriptor TO merchant")
        c.execute("INSERT INTO tx_renamed (id, account, merchant) SELECT 800000 + g, 'a', (%s::text[])[1 + g] FROM generate_series(0, 99) g", (descs,))
        got = c.execute("SELECT count(*), count(*) FILTER (WHERE txclass_model IS NULL) FROM tx_renamed WHERE id >= 800000").fetchone()
        cols = [one(x, "SELECT descriptor_column FROM txclass.monitored WHERE relid = 'tx_renamed'::regclass") for x in (c, w1, w2)]
        check("a renamed distributed table and descriptor column: every node follows, rows stay enriched",
              got == (100, 0) and cols == ["merchant"] * 3, f"{got} {cols}")
        c.execute("ALTER TABLE tx_renamed RENAME COLUMN merchant TO descriptor")
        c.execute("ALTER TABLE tx_renamed RENAME TO tx")

        # undistribute_table: the table is a local one again; writes are never refused
        c.execute("CREATE TABLE undist (id bigint PRIMARY KEY, descriptor text)")
        c.execute("SELECT create_distributed_table('undist', 'id')")
        c.execute("SELECT txclass.attach('undist', 'descriptor')")
        c.execute("SELECT undistribute_table('undist')")
        notices = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("INSERT INTO undist SELECT g, (%s::text[])[1 + g] FROM generate_series(0, 49) g", (descs,))
        got = c.execute("SELECT count(*), count(*) FILTER (WHERE txclass_model IS NOT NULL) FROM undist").fetchone()
        attached = one(c, "SELECT count(*) FROM txclass.monitored WHERE relid = 'undist'::regclass")
        check("undistribute_table: the local table keeps enriching (or warns, never refuses a write)",
              got[0] == 50 and (got[1] == 50 or any("txclass" in n for n in notices)), f"{got}, attached {attached}, notices {notices[:2]}")

        # a worker added after the registry was set: cluster_sync brings it level; rebalanced
        # shards then enrich there
        harness.cluster("start", *W3, env=ENV)
        w3 = connect(W3)
        w3.execute("CREATE EXTENSION citus")
        c.execute("SELECT citus_add_node('127.0.0.1', %s)", (W3[1],))
        has_ext = one(w3, "SELECT extversion FROM pg_extension WHERE extname = 'txclass'")
        before = (active(w3), serving(connect(W3)))
        synced = dict(c.execute("SELECT tbl, rows FROM txclass.cluster_sync()").fetchall())
        after = (active(w3), serving(connect(W3)))
        want = (active(c), serving(c))
        check("a worker added later: citus_add_node creates the extension there, cluster_sync() gives it the coordinator's registry",
              has_ext is not None and before[0] is None and after == want
              and sorted(r[0] for r in w3.execute("SELECT name FROM txclass.models")) == sorted(r[0] for r in c.execute("SELECT name FROM txclass.models")),
              f"{has_ext}; {before} -> {after}, coordinator {want}; sent {synced}")
        again = dict(c.execute("SELECT tbl, rows FROM txclass.cluster_sync()").fetchall())
        check("cluster_sync() a second time changes nothing and fails nowhere", active(w3) == want[0], str(again))
        c.execute("SELECT rebalance_table_shards('tx', shard_transfer_mode => 'block_writes')")
        on_w3 = one(c, "SELECT count(*) FROM citus_shards WHERE table_name = 'tx'::regclass AND nodeport = %s", W3[1])
        c.execute("INSERT INTO tx (id, account, descriptor) SELECT 900000 + g, 'a', (%s::text[])[1 + g %% 50] FROM generate_series(1, 300) g", (descs,))
        got = one(c, "SELECT count(*) FILTER (WHERE txclass_model IS NULL) FROM tx WHERE id > 900000")
        check("after rebalancing onto the new worker, rows routed there are enriched", on_w3 > 0 and got == 0, f"{on_w3} shards there, {got} unenriched")

        # detach: no shard enriches any more, no write is refused
        c.execute("SELECT txclass.detach('tx')")
        c.execute("INSERT INTO tx (id, account, descriptor) VALUES (200000, 'acct', %s)", (descs[1],))
        after = one(c, "SELECT txclass_model FROM tx WHERE id = 200000")
        left = [one(x, "SELECT count(*) FROM txclass.monitored WHERE relid = 'tx'::regclass") for x in (w1, w2)]
        check("detach on the coordinator: the row is written, unenriched; no worker keeps the attachment", after is None and left == [0, 0], f"{after} {left}")
    except Exception as e:  # a failure outside a check is a failed check, not a crash
        check("the tier ran to its end", False, repr(e)[:400])
    finally:
        if False in check.results:
            for n in NODES:   # what the servers said, for the failure above
                lines = [l for l in harness.server_log(n[0]).splitlines()
                         if any(w in l for w in ("PANIC", "TRAP", "terminated by signal", "FATAL", "ERROR"))]
                print(f"--- {n[0]} server log (errors, last 15):\n" + "\n".join(lines[-15:]))
        for n in NODES:
            if os.environ.get("TXCLASS_KEEP_CLUSTERS"):
                break   # left running for a look by hand
            try:
                harness.cluster("stop", *n)
            except Exception:
                pass
    check.finish()


if __name__ == "__main__":
    main()
