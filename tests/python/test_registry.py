#!/usr/bin/env python3
"""Out-of-process registry tests, on throwaway clusters of their own:

  1. 16 busy backends all serve a newly activated model, and the old one after a rollback,
     with no result attributed to the wrong model;
  2. concurrent activation from two connections: serialized, the log chains them, the later
     commit wins; under REPEATABLE READ the loser gets a serialization failure;
  3. an uncommitted or aborted activation is never served by another backend;
  4. a model directory whose files changed after registration: activation refused, a backend
     loading it gets an error naming the change, rollback recovers;
  5. server restart: the active model is still served (shared memory starts empty);
  6. without shared_preload_libraries: other backends pick up an activation at their next
     transaction;
  7. pgbench, 16 clients, switching models every 2 s for 20 s: zero errors, zero results
     attributed to the wrong model;
  8. pg_dump / restore into a new database keeps models, deployments, the active model, rules
     and stored evaluations, and the restored database serves its active model;
  9. a hot standby serves the primary's active model, and switches after an activation on the
     primary is replayed.

    test_registry.py <repo root>
Prints 'registry: N passed, M failed'.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time

import psycopg

from harness import Checks, cluster, conninfo, three_models

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from busy import BusyBackends, activate  # noqa: E402

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = "/tmp/txclass-registry-fixtures"
check = Checks("registry")


@contextlib.contextmanager
def registry_cluster(name, port, env=None):
    """A cluster with txclass and three registered models: v1 (bundled), relabelled, wide."""
    flags = cluster("start", name, port, env)
    try:
        ci = conninfo(flags)
        with psycopg.connect(ci, autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            three_models(c, FIX, root=ROOT)
        yield ci, flags
    finally:
        cluster("stop", name, port)


def one(ci, sql, params=None):
    with psycopg.connect(ci, autocommit=True) as c:
        return c.execute(sql, params).fetchone()


def run(ci, sql):
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute(sql)


def served(ci):
    return one(ci, "SELECT split_part(d.model, '@', 1) FROM txclass.classify_transaction_detail('STARBUCKS STORE 1') d")[0]


def test_busy_backends(ci):
    with BusyBackends(ci, 16) as busy:
        check("16 busy backends started", not busy.errors, "; ".join(busy.errors[:2]))
        lat = {}
        for step, sql, want in [("activate", "SELECT txclass.activate_model('relabelled')", "relabelled"),
                                ("activate 5000 classes", "SELECT txclass.activate_model('wide')", "wide"),
                                ("rollback", "SELECT txclass.rollback_model()", "relabelled"),
                                ("rollback", "SELECT txclass.rollback_model()", "v1")]:
            busy.forget()
            t = activate(ci, sql)
            lat[f"{step} -> {want}"] = busy.wait_all_serve(want, t)
        time.sleep(0.2)
    ok = all(v is not None for v in lat.values())
    check("all 16 busy backends serve each new model after activate / rollback", ok,
          ", ".join(f"{k}: {v * 1000:.0f} ms" if v is not None else f"{k}: never" for k, v in lat.items()))
    check("no busy backend got an error", not busy.errors, "; ".join(busy.errors[:3]))
    check("no result attributed to the wrong model", not busy.mislabelled and sum(busy.calls) > 0,
          f"{sum(busy.calls)} calls, {len(busy.mislabelled)} mislabelled {busy.mislabelled[:3]}")


def test_concurrent_activation(ci):
    a = psycopg.connect(ci)
    a.execute("SELECT txclass.activate_model('relabelled')")
    out = {}

    def second():
        try:
            with psycopg.connect(ci, autocommit=True) as b:
                out["row"] = b.execute("SELECT id, previous FROM txclass.activate_model('wide')").fetchone()
        except Exception as e:  # noqa: BLE001
            out["error"] = repr(e)
    t = threading.Thread(target=second)
    t.start()
    time.sleep(1.0)
    blocked = t.is_alive()
    a_id = a.execute("SELECT deployment FROM txclass.active").fetchone()[0]
    a.commit()
    t.join(30)
    a.close()
    check("a second activation waits for the first to commit", blocked)
    ok = "row" in out and out["row"][1] == a_id
    check("both succeed, and the second's previous is the first", ok, str(out))
    check("the later commit is the active model", one(ci, "SELECT name FROM txclass.active_model")[0] == "wide")
    check("and it is what backends serve", served(ci) == "wide")
    # REPEATABLE READ: the transaction that lost the race gets a serialization failure
    a = psycopg.connect(ci)
    a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    a.execute("SELECT 1")  # snapshot taken
    one(ci, "SELECT txclass.activate_model('v1')")
    try:
        a.execute("SELECT txclass.activate_model('relabelled')")
        a.commit()
        err = None
    except psycopg.errors.SerializationFailure as e:
        err = e
        a.rollback()
    a.close()
    check("REPEATABLE READ: a stale activation fails with a serialization failure", err is not None,
          str(err).splitlines()[0] if err else "it committed")
    check("and changes nothing", one(ci, "SELECT name FROM txclass.active_model")[0] == "v1" and served(ci) == "v1")


def test_uncommitted_invisible(ci):
    before = served(ci)
    with psycopg.connect(ci) as a:
        a.execute("SELECT txclass.activate_model('relabelled')")
        during = served(ci)
        a.rollback()
    after = served(ci)
    check("an uncommitted activation is not served elsewhere, an aborted one never", (before, during, after) == ("v1",) * 3,
          f"{before} / {during} / {after}")


def test_prepared(ci, name, port):
    """Two-phase commit (how Citus commits on its workers): a prepared activation is in doubt until
    COMMIT/ROLLBACK PREPARED in another session; no backend may serve it before, every backend
    serves it from its next statement after a commit, none after a rollback; and the session that
    prepared it publishes nothing at its next, unrelated commit."""
    with psycopg.connect(ci, autocommit=True) as watcher:
        def w():
            return watcher.execute("SELECT split_part(d.model, '@', 1) FROM txclass.classify_transaction_detail('STARBUCKS STORE 1') d").fetchone()[0]
        before = w()
        with psycopg.connect(ci, autocommit=True) as a:
            a.execute("BEGIN")
            a.execute("SELECT txclass.activate_model('relabelled')")
            a.execute("PREPARE TRANSACTION 'txclass_test_commit'")
            in_doubt = (w(), served(ci))
            a.execute("SELECT 1")   # the preparing session's next transactions publish nothing
            run(ci, "COMMIT PREPARED 'txclass_test_commit'")
            after = (w(), served(ci))
            check("a prepared activation is served by no backend while in doubt, by every backend after COMMIT PREPARED in another session",
                  before == "v1" and in_doubt == ("v1", "v1") and after == ("relabelled", "relabelled"), f"{before} / {in_doubt} / {after}")
            a.execute("BEGIN")
            a.execute("SELECT txclass.activate_model('v1')")
            a.execute("PREPARE TRANSACTION 'txclass_test_rollback'")
            a.execute("BEGIN")
            a.execute("SELECT txclass.labels() LIMIT 1")
            a.execute("COMMIT")   # 0.4.0 published its staged activation here (a pgrx hook left over by PREPARE)
            in_doubt = (w(), served(ci))
            run(ci, "ROLLBACK PREPARED 'txclass_test_rollback'")
            after = (w(), served(ci))
            check("a prepared activation rolled back is never served; the preparing session's next commit publishes nothing",
                  in_doubt == ("relabelled", "relabelled") and after == ("relabelled", "relabelled"), f"{in_doubt} / {after}")
            # rules changed in a prepared transaction: applied everywhere once committed
            a.execute("BEGIN")
            a.execute("INSERT INTO txclass.rules (pattern, label) VALUES ('^prepared rule shop', 'Prepared Rule Shop')")
            a.execute("PREPARE TRANSACTION 'txclass_test_rules'")
            q = "SELECT txclass.classify_transaction('PREPARED RULE SHOP 1')"
            in_doubt = watcher.execute(q).fetchone()[0]
            run(ci, "COMMIT PREPARED 'txclass_test_rules'")
            after = watcher.execute(q).fetchone()[0]
            run(ci, "DELETE FROM txclass.rules WHERE label = 'Prepared Rule Shop'")
            check("a rule added in a prepared transaction answers once committed, not before", in_doubt != "Prepared Rule Shop" and after == "Prepared Rule Shop",
                  f"{in_doubt} / {after}")
        run(ci, "SELECT txclass.activate_model('v1')")
    # a restart while an activation is prepared: shared memory forgets what PREPARE recorded, the
    # prepared transaction (and its locks) survive; after COMMIT PREPARED every backend serves it
    with psycopg.connect(ci, autocommit=True) as a:
        a.execute("BEGIN")
        a.execute("SELECT txclass.activate_model('relabelled')")
        a.execute("PREPARE TRANSACTION 'txclass_test_restart'")
    cluster("restart", name, port)
    with psycopg.connect(ci, autocommit=True) as watcher:
        q = "SELECT split_part(d.model, '@', 1) FROM txclass.classify_transaction_detail('STARBUCKS STORE 1') d"
        in_doubt = (watcher.execute(q).fetchone()[0], served(ci))
        run(ci, "COMMIT PREPARED 'txclass_test_restart'")
        after = (watcher.execute(q).fetchone()[0], served(ci))
    check("a server restart while an activation is prepared: the committed model serves until COMMIT PREPARED, the new one after, in every backend",
          in_doubt == ("v1", "v1") and after == ("relabelled", "relabelled"), f"{in_doubt} / {after}")
    run(ci, "SELECT txclass.activate_model('v1')")


def test_changed_files(ci):
    d = "/tmp/txclass-registry-mutable"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(f"{FIX}/good", d)
    os.chmod(d, 0o755)
    one(ci, f"SELECT txclass.register_model('mutable', '{d}')")
    one(ci, "SELECT txclass.activate_model('mutable')")
    check("the copy serves", served(ci) == "mutable")
    cfg = open(f"{d}/config.json").read()
    open(f"{d}/config.json", "w").write(cfg.replace('"Starbucks"', '"Starbucks Changed"', 1))
    # a new backend loads from disk: the changed files are refused, with the cause named
    try:
        served(ci)
        err, code = "served", None
    except psycopg.Error as e:
        err, code = str(e), e.sqlstate
    check("a backend loading changed files of the active model gets an error naming the change",
          "changed since it was registered" in err and "mutable" in err, err.splitlines()[0])
    check("its SQLSTATE says the registered object changed (55000), not a configuration error (F0000)",
          code == "55000", code)
    one(ci, "SELECT txclass.rollback_model('files changed')")
    check("rollback recovers at once", served(ci) == "v1")
    try:
        one(ci, "SELECT txclass.activate_model('mutable')")
        err = "activated"
    except psycopg.Error as e:
        err = str(e)
    check("re-activating a checksum-changed directory is refused", "changed since it was registered" in err,
          err.splitlines()[0])
    shutil.rmtree(d, ignore_errors=True)


def test_restart(name, port, ci):
    one(ci, "SELECT txclass.activate_model('relabelled')")
    gen_before = one(ci, "SELECT txclass.registry_generation()")[0]
    cluster("restart", name, port)
    gen_after = one(ci, "SELECT txclass.registry_generation()")[0]
    check("after a restart the active model is still served", served(ci) == "relabelled",
          f"generation {gen_before} -> {gen_after} (shared memory starts empty)")
    one(ci, "SELECT txclass.activate_model('v1')")
    check("and the next activation reaches backends", served(ci) == "v1")


def test_no_preload():
    with registry_cluster("reg-nopre", 54372, {"TXCLASS_NO_PRELOAD": "1"}) as (ci, _):
        with psycopg.connect(ci, autocommit=True) as other:
            q = "SELECT split_part(d.model, '@', 1) FROM txclass.classify_transaction_detail('STARBUCKS STORE 1') d"
            first = other.execute(q).fetchone()[0]
            one(ci, "SELECT txclass.activate_model('relabelled')")
            second = other.execute(q).fetchone()[0]
        check("without shared_preload_libraries, another backend serves the activation at its next transaction",
              (first, second) == ("v1", "relabelled"), f"{first} -> {second}")


PGBENCH_SCRIPT = r"""\set i random(1, 200)
INSERT INTO bench_results (model, descriptor, label)
SELECT split_part(d.model, '@', 1), y.s, d.label
FROM (SELECT CASE WHEN :i % 2 = 0 THEN 'STARBUCKS STORE ' || :i ELSE 'TESCO STORES ' || :i END AS s) y,
     LATERAL txclass.classify_transaction_detail(y.s) d;
"""


def test_pgbench_switching(ci, flags):
    run(ci, "CREATE TABLE bench_results (model text, descriptor text, label text)")
    script = "/tmp/txclass-registry-pgbench.sql"
    open(script, "w").write(PGBENCH_SCRIPT)
    os.chmod(script, 0o644)
    stop = threading.Event()
    switches = []

    def switcher():
        names = ["relabelled", "wide", "v1"]
        k = 0
        while not stop.wait(2.0):
            try:
                one(ci, "SELECT txclass.activate_model(%s)", (names[k % 3],))
                switches.append(names[k % 3])
            except Exception as e:  # noqa: BLE001
                switches.append(f"error: {e!r}")
            k += 1
    t = threading.Thread(target=switcher)
    t.start()
    r = subprocess.run(["pgbench", *flags.split(), "-n", "-c", "16", "-j", "4", "-T", "20", "-f", script, "postgres"],
                       capture_output=True, text=True)
    stop.set()
    t.join()
    failed_line = [line for line in r.stdout.splitlines() if "failed" in line]
    tps = [line for line in r.stdout.splitlines() if line.startswith("tps")]
    check("pgbench with a model switch every 2 s: exit 0, no failed transactions",
          r.returncode == 0 and all(line.strip().endswith("0 (0.000%)") for line in failed_line),
          f"{len(switches)} switches ({sum(s.startswith('error') for s in switches)} failed); "
          f"{tps[0] if tps else r.stderr.strip()[-300:]}")
    rows, models = one(ci, "SELECT count(*), count(DISTINCT model) FROM bench_results")
    wrong = one(ci, """SELECT count(*) FROM bench_results WHERE
        (descriptor LIKE 'STARBUCKS%%' AND label <> CASE model WHEN 'relabelled' THEN 'Starbucks (renamed)' ELSE 'Starbucks' END)
        OR (descriptor LIKE 'TESCO%%' AND label <> 'Tesco')""")[0]
    check("zero results attributed to the wrong model", rows > 0 and models == 3 and wrong == 0,
          f"{rows} rows from {models} models, {wrong} wrong")


def test_dump_restore(ci, flags):
    run(ci, "INSERT INTO txclass.rules (pattern, label, note) VALUES ('^dumped rule', 'Dumped', 'kept by pg_dump')")
    one(ci, "SELECT txclass.activate_model('relabelled', reason => 'before dump')")
    one(ci, "SELECT txclass.evaluate('relabelled', $$SELECT 'STARBUCKS 1', 'Starbucks'$$)")
    state = ("SELECT (SELECT count(*) FROM txclass.models), (SELECT count(*) FROM txclass.deployments), "
             "(SELECT name FROM txclass.active_model), (SELECT count(*) FROM txclass.rules), "
             "(SELECT count(*) FROM txclass.evaluations)")
    before = one(ci, state)
    run(ci, "CREATE DATABASE restored")
    args = flags.split()
    dump = subprocess.run(["pg_dump", *args, "-d", "postgres"], capture_output=True, text=True)
    rest = subprocess.run(["psql", *args, "-d", "restored", "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=dump.stdout,
                          capture_output=True, text=True)
    ci2 = ci.replace("dbname=postgres", "dbname=restored")
    after = one(ci2, state) if rest.returncode == 0 else None
    check("pg_dump / restore keeps models, deployments, the active model, rules and evaluations",
          dump.returncode == 0 and rest.returncode == 0 and after == before,
          f"{before} -> {after} {rest.stderr.strip()[:300]}")
    got = one(ci2, "SELECT split_part(d.model, '@', 1), d.label FROM txclass.classify_transaction_detail('STARBUCKS STORE 9') d")
    rule = one(ci2, "SELECT d.source FROM txclass.classify_transaction_detail('DUMPED RULE 1') d")[0]
    check("the restored database serves its active model and rules", got == ("relabelled", "Starbucks (renamed)") and rule == "rule",
          f"{got}, {rule}")
    nxt = one(ci2, "SELECT model, previous IS NOT NULL FROM txclass.rollback_model()")
    check("and its log continues (rollback works there)", nxt[1] and served(ci2) == nxt[0], str(nxt))


def test_standby(ci, port):
    one(ci, "SELECT txclass.activate_model('relabelled')")
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "cluster.sh"), "standby", "reg-standby", "54375", "reg"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        check("a hot standby starts", False, (r.stdout + r.stderr)[-300:])
        return
    flags = r.stdout.strip().split()
    sci = f"host={flags[1]} port={flags[3]} user={flags[5]} dbname=postgres"
    try:
        with psycopg.connect(sci, autocommit=True) as s:
            q = "SELECT split_part(d.model, '@', 1) FROM txclass.classify_transaction_detail('STARBUCKS STORE 1') d"
            first = s.execute(q).fetchone()[0]
            one(ci, "SELECT txclass.activate_model('wide')")
            lsn = one(ci, "SELECT pg_current_wal_insert_lsn()::text")[0]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                time.sleep(0.1)
            second = s.execute(q).fetchone()[0]
        check("a hot standby serves the primary's active model, and the next one after replay", (first, second) == ("relabelled", "wide"),
              f"{first} -> {second}")
    finally:
        cluster("stop", "reg-standby", 54375)


def main():
    try:
        with registry_cluster("reg", 54371, {"TXCLASS_CLUSTER_CONF": "max_prepared_transactions = 10"}) as (ci, flags):
            test_busy_backends(ci)
            test_concurrent_activation(ci)
            test_uncommitted_invisible(ci)
            test_prepared(ci, "reg", 54371)
            test_changed_files(ci)
            test_restart("reg", 54371, ci)
            test_pgbench_switching(ci, flags)
            test_dump_restore(ci, flags)
            test_standby(ci, 54371)
        test_no_preload()
    except Exception as e:  # noqa: BLE001
        check("registry tests ran to the end", False, repr(e))
    check.finish()


if __name__ == "__main__":
    main()
