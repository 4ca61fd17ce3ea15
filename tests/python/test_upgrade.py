#!/usr/bin/env python3
"""Upgrade tier: released SQL on the current library, ALTER EXTENSION UPDATE, pg_dump.

  1. every released script is in the repository: sql/install/txclass--<current>.sql is the
     install script this build generates (a schema change without a new snapshot fails here,
     and with it the upgrade step of item 4), and every symbol any script in sql/install/ or
     sql/upgrade/ names is exported by the built library;
  2. 0.1.0 from the frozen script, used for real on the current library: three models
     registered, a deployment history (activate, activate, rollback), rules, an attached table
     with the Oxford rows enriched by the trigger, drift summaries and a baseline, stored
     evaluations; its 0.1.0 functions answer (model_info's old columns);
  3. ALTER EXTENSION UPDATE inside a transaction that rolls back leaves 0.1.0 whole;
  4. ALTER EXTENSION UPDATE: the extension's objects equal a fresh install's (functions with
     their source, results, volatility, strictness, parallel safety, security, settings and
     privileges; tables, columns, defaults, constraints, indexes, views, triggers, policies,
     comments, extension membership and pg_dump configuration), every row of every txclass
     table and of the attached table is unchanged, a privilege a DBA revoked stays revoked, the
     active model still serves, the trigger still enriches, rollback reaches the 0.1.0
     deployments;
  5. pg_dump of the upgraded database restores into a fresh database, which serves the same
     model and has the same rows;
  6. the library replaced under a running server (what `apt-get install` of a new package does),
     with 0.1.0's real library built from its commit: with shared_preload_libraries the update
     refuses with the restart hint and changes nothing while a session on the old library
     keeps serving, and succeeds after a restart; without preload a new connection updates and
     an old session gets a clear error for the new functions. Needs the 0.1.0 commit in the
     clone's history (a shallow clone skips this part and says so).

    test_upgrade.py <repo root>
Prints 'upgrade: N passed, M failed'.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

import psycopg

from harness import Checks, cluster, conninfo, load_oxford_labels, three_models

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_CONFIG = os.environ.get("PG_CONFIG", "/usr/lib/postgresql/15/bin/pg_config")
FIX = "/tmp/txclass-upgrade-fixtures"
OLD = "0.1.0"
OLD_COMMIT = "ab1ab2ec534f80d5d9aadece993bf743f35925c8"  # the tree 0.1.0 was released from
check = Checks("upgrade")


def pg_config(flag):
    return subprocess.run([PG_CONFIG, flag], capture_output=True, text=True, check=True).stdout.strip()


def current_version():
    m = re.search(r'^version = "([^"]+)"', open(os.path.join(ROOT, "Cargo.toml")).read(), re.M)
    return m.group(1)


def strip_locations(text):
    """pgrx's install script less its `-- src/file.rs:LINE` comments (they move with every edit)."""
    return "".join(line for line in text.splitlines(keepends=True) if not re.match(r"^-- src/\S+:\d+$", line.rstrip("\n")))


def test_scripts(version):
    ext = os.path.join(pg_config("--sharedir"), "extension")
    generated = open(os.path.join(ext, f"txclass--{version}.sql")).read()
    snap_path = os.path.join(ROOT, "sql", "install", f"txclass--{version}.sql")
    snapshot = open(snap_path).read() if os.path.exists(snap_path) else ""
    same = strip_locations(generated) == snapshot
    detail = "" if same else (f"{snap_path} differs from the generated install script: run scripts/snapshot.sh, "
                              "and write the upgrade step for what changed")
    check(f"sql/install/txclass--{version}.sql is the install script this build generates", same, detail)
    upgrades = sorted(glob.glob(os.path.join(ROOT, "sql", "upgrade", "txclass--*--*.sql")))
    path = [(m.group(1), m.group(2)) for m in (re.search(r"txclass--(.+)--(.+)\.sql$", u) for u in upgrades)]
    installs = sorted(os.path.basename(p)[len("txclass--"):-4] for p in glob.glob(os.path.join(ROOT, "sql", "install", "txclass--*.sql")))
    reach = {version}
    for _ in path:  # every released version reaches the current one through upgrade steps
        reach |= {a for a, b in path if b in reach}
    check("every released version has an upgrade path to the current one", set(installs) <= reach,
          f"installs {installs}, steps {path}")
    names = set()
    for f in glob.glob(os.path.join(ROOT, "sql", "install", "*.sql")) + upgrades:
        names |= set(re.findall(r"'MODULE_PATHNAME',\s*'(\w+)'", open(f).read()))
    lib = os.path.join(pg_config("--pkglibdir"), "txclass.so")
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True)
    exported = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    missing = sorted(n for n in names if n not in exported or f"pg_finfo_{n}" not in exported)
    check("every symbol a released or upgrade script names is in the library (with its pg_finfo)",
          nm.returncode == 0 and len(names) > 20 and not missing, f"{len(names)} symbols, missing {missing}")


# Everything that makes up the extension's schema, as sorted text lines (no OIDs).
CATALOG = r"""
WITH ns AS (SELECT 'txclass'::regnamespace AS oid)
SELECT 'function ' || p.oid::regprocedure::text || ' (' || pg_get_function_arguments(p.oid) || ') -> '
       || coalesce(pg_get_function_result(p.oid), '') || ' kind=' || p.prokind::text || ' lang=' || l.lanname
       || ' vol=' || p.provolatile::text || ' strict=' || p.proisstrict || ' par=' || p.proparallel::text
       || ' secdef=' || p.prosecdef || ' cost=' || p.procost || ' rows=' || p.prorows
       || ' config=' || coalesce(p.proconfig::text, '') || ' acl=' || coalesce(p.proacl::text, '')
       || ' bin=' || coalesce(p.probin, '') || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '')
       || E'\n  src=' || p.prosrc
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang, ns WHERE p.pronamespace = ns.oid
UNION ALL
SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
       || ' acl=' || coalesce(c.relacl::text, '') || ' options=' || coalesce(c.reloptions::text, '')
       || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity
       || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
       || CASE WHEN c.relkind = 'v' THEN E'\n  view=' || pg_get_viewdef(c.oid) ELSE '' END
FROM pg_class c, ns WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'column ' || c.relname || '.' || lpad(a.attnum::text, 3, '0') || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
       || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text || ' acl=' || coalesce(a.attacl::text, '')
       || ' comment=' || coalesce(col_description(c.oid, a.attnum), '')
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum, ns
WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'constraint ' || coalesce(c.relname, t.typname) || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid)
FROM pg_constraint k LEFT JOIN pg_class c ON c.oid = k.conrelid LEFT JOIN pg_type t ON t.oid = k.contypid, ns
WHERE k.connamespace = ns.oid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid, ns
WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'trigger ' || c.relname || ' ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || c.relname || '.' || p.polname || ' cmd=' || p.polcmd::text || ' permissive=' || p.polpermissive
       || ' roles=' || p.polroles::regrole[]::text || ' using=' || coalesce(pg_get_expr(p.polqual, p.polrelid), '')
       || ' check=' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid, ns WHERE c.relnamespace = ns.oid
UNION ALL
SELECT 'type ' || t.typname || ' ' || t.typtype::text || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
       FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '')
FROM pg_type t, ns WHERE t.typnamespace = ns.oid AND t.typtype <> 'b'
UNION ALL
SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
WHERE e.extname = 'txclass' AND d.deptype = 'e'
UNION ALL
SELECT 'dump-config ' || x.cfg::regclass::text || ' where=' || coalesce(x.cond, '')
FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, cond) WHERE e.extname = 'txclass'
UNION ALL
SELECT 'schema-acl ' || coalesce(n.nspacl::text, '') FROM pg_namespace n, ns WHERE n.oid = ns.oid
ORDER BY 1
"""

# every row of every txclass table and of the attached table, as (table, count, md5)
ROWS = """
SELECT c.oid::regclass::text FROM pg_class c
WHERE (c.relnamespace = 'txclass'::regnamespace AND c.relkind IN ('r', 'p')) OR c.oid = 'public.txns'::regclass
ORDER BY 1
"""


def catalog(conn):
    return [r[0] for r in conn.execute(CATALOG).fetchall()]


def table_rows(conn, like=None):
    """{table: (rows, md5 of every row)}; with `like` (an earlier result), over the columns the
    table had then (an upgrade may add columns; what was there must be unchanged)."""
    out = {}
    for (t,) in conn.execute(ROWS).fetchall():
        cols = like[t][2] if like and t in like else [r[0] for r in conn.execute(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (t,)).fetchall()]
        row = f"ROW({', '.join(cols)})::text"
        n, h = conn.execute(f"SELECT count(*), md5(coalesce(string_agg({row}, E'\\n' ORDER BY {row}), '')) FROM {t}").fetchone()
        out[t] = (n, h, cols)
    return out


def served(conn):
    return conn.execute("SELECT split_part(d.model, '@', 1), d.label FROM txclass.classify_transaction_detail('STARBUCKS STORE 7') d").fetchone()


def use_for_real(c):
    """What a 0.1.0 user had: models, a rollout history, rules, an attached table, drift, evaluations."""
    three_models(c, FIX, root=ROOT)  # v1, relabelled, wide; activates v1
    c.execute("INSERT INTO txclass.rules (pattern, label, note) VALUES ('^council tax', 'Council Tax', 'decision table')")
    c.execute("SELECT txclass.evaluate('v1', $$SELECT 'STARBUCKS 1', 'Starbucks' UNION ALL SELECT 'TESCO STORES 2', 'Tesco'$$)")
    c.execute("SELECT txclass.evaluate('relabelled', $$SELECT 'STARBUCKS 1', 'Starbucks (renamed)'$$)")
    load_oxford_labels(c)
    c.execute("CREATE TABLE txns (id bigserial PRIMARY KEY, descriptor text, posted date)")
    c.execute("SELECT txclass.attach('txns', 'descriptor', time_column => 'posted')")
    c.execute("INSERT INTO txns (descriptor, posted) SELECT descriptor, time FROM oxford_labels ORDER BY id")
    c.execute("SELECT txclass.refresh_drift('txns')")
    c.execute("SELECT txclass.set_baseline('txns')")  # v1's training distribution
    c.execute("SELECT txclass.activate_model('relabelled', reason => 'rollout')")
    c.execute("SELECT txclass.activate_model('wide', reason => 'try the wide one')")
    c.execute("SELECT txclass.rollback_model(reason => 'wide was worse')")
    # a DBA's own privilege on a function the upgrade recreates
    c.execute("REVOKE EXECUTE ON FUNCTION txclass.enrichment_status(regclass) FROM PUBLIC")


def old_library():
    """0.1.0's library, built (debug) from its commit in a worktree; None without the history."""
    if subprocess.run(["git", "-C", ROOT, "cat-file", "-e", OLD_COMMIT + "^{commit}"], capture_output=True).returncode != 0:
        return None
    tree = os.path.join(ROOT, "build", f"txclass-{OLD}")
    if not os.path.exists(os.path.join(tree, "Cargo.toml")):
        subprocess.run(["git", "-C", ROOT, "worktree", "prune"], capture_output=True)
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "--force", tree, OLD_COMMIT], check=True, capture_output=True)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", f"txclass-{OLD}"), CARGO_PROFILE_DEV_DEBUG="0")
    r = subprocess.run(["cargo", "build", "--lib", "--no-default-features", "--features", "pg15"], cwd=tree, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"building {OLD}'s library failed: {r.stderr[-1000:]}")
    return os.path.join(env["CARGO_TARGET_DIR"], "debug", "libtxclass.so")


def test_live_library():
    """The library file replaced under a running server, both ways."""
    if "pg15" not in PG_CONFIG and "/15/" not in pg_config("--bindir"):
        print(f"skip the live-library checks: {OLD} was released for PostgreSQL 15 only")
        return
    old = old_library()
    if old is None:
        print(f"skip the live-library checks: commit {OLD_COMMIT[:12]} ({OLD}) is not in this clone's history")
        return
    lib = os.path.join(pg_config("--pkglibdir"), "txclass.so")
    new = "/tmp/txclass-upgrade-new.so"
    shutil.copyfile(lib, new)

    def put(src):  # a new file, as install(1) and dpkg write it: running processes keep the old one
        subprocess.run(["install", "-m", "755", src, lib], check=True)

    try:
        put(old)
        flags = cluster("start", "upgrade-live", 54392)
        try:
            ci = conninfo(flags)
            with psycopg.connect(ci, autocommit=True) as c, psycopg.connect(ci, autocommit=True) as live:
                c.execute(f"CREATE EXTENSION txclass VERSION '{OLD}'")
                live.execute("SELECT txclass.classify_transaction('TESCO STORES 1')")
                put(new)
                with psycopg.connect(ci, autocommit=True) as b:  # a new backend: forked from the postmaster's old library
                    try:
                        b.execute("ALTER EXTENSION txclass UPDATE")
                        err = None
                    except psycopg.Error as e:
                        err = e
                    v = b.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0]
                check("preloaded: ALTER EXTENSION UPDATE before the restart refuses, naming the restart, and changes nothing",
                      err is not None and "restart PostgreSQL" in (err.diag.message_hint or "") and v == OLD,
                      f"{str(err).splitlines()[0] if err else 'no error'}; still {v}")
                label = live.execute("SELECT txclass.classify_transaction('TESCO STORES 2')").fetchone()[0]
                check("a session on the old library serves on meanwhile", label == "Tesco", str(label))
            flags = cluster("restart", "upgrade-live", 54392)
            with psycopg.connect(conninfo(flags), autocommit=True) as c:
                c.execute("ALTER EXTENSION txclass UPDATE")
                got = c.execute("SELECT (SELECT extversion FROM pg_extension WHERE extname = 'txclass'), inference FROM txclass.model_info()").fetchone()
            # served from the shared inference workers: the default where the library is preloaded
            check("preloaded: after the restart the update succeeds and 0.2.0 serves", got == (current_version(), "worker"), str(got))
        finally:
            cluster("stop", "upgrade-live", 54392)

        put(old)
        flags = cluster("start", "upgrade-live2", 54393, env={"TXCLASS_NO_PRELOAD": "1"})
        try:
            ci = conninfo(flags)
            with psycopg.connect(ci, autocommit=True) as c, psycopg.connect(ci, autocommit=True) as live:
                c.execute(f"CREATE EXTENSION txclass VERSION '{OLD}'")
                live.execute("SELECT txclass.classify_transaction('TESCO STORES 1')")
                put(new)
                with psycopg.connect(ci, autocommit=True) as b:  # loads the new file
                    b.execute("ALTER EXTENSION txclass UPDATE")
                    got = b.execute("SELECT inference FROM txclass.model_info()").fetchone()[0]
                try:
                    live.execute("SELECT * FROM txclass.worker_stats")
                    err = None
                except psycopg.Error as e:
                    err = e
                check("not preloaded: a new connection updates; a session still on the old library gets a clear error for new functions",
                      got == "backend" and err is not None and "could not find function" in str(err),
                      f"{got}; {str(err).splitlines()[0] if err else 'no error'}")
        finally:
            cluster("stop", "upgrade-live2", 54393)
    finally:
        put(new)


def main():
    version = current_version()
    test_scripts(version)
    flags = cluster("start", "upgrade", 54391)
    try:
        base = conninfo(flags)
        with psycopg.connect(base, autocommit=True) as c:
            c.execute("CREATE DATABASE fresh")
            c.execute("CREATE DATABASE old")
        with psycopg.connect(conninfo(flags, "fresh"), autocommit=True) as f:
            f.execute("CREATE EXTENSION txclass")
            f.execute("REVOKE EXECUTE ON FUNCTION txclass.enrichment_status(regclass) FROM PUBLIC")
            fresh_catalog = catalog(f)
            fresh_version = f.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0]
        check(f"CREATE EXTENSION installs {version}", fresh_version == version, fresh_version)

        oci = conninfo(flags, "old")
        with psycopg.connect(oci, autocommit=True) as c:
            c.execute(f"CREATE EXTENSION txclass VERSION '{OLD}'")
            use_for_real(c)
            cols = [d.name for d in c.execute("SELECT * FROM txclass.model_info()").description]
            info = c.execute("SELECT model FROM txclass.model_info()").fetchone()[0]
            enriched = c.execute("SELECT count(*), count(txclass_label), count(DISTINCT txclass_model) FROM txns").fetchone()
            check(f"{OLD} objects work on the current library: model_info() has {OLD}'s 11 columns, the trigger enriched the Oxford rows",
                  len(cols) == 11 and "inference" not in cols and info.startswith("relabelled@")
                  and enriched[0] > 1000 and enriched[1] == enriched[0] and enriched[2] == 1,
                  f"{len(cols)} columns, {info}, {enriched}")
            old_catalog = catalog(c)
            check(f"{OLD}'s schema differs from {version}'s (the upgrade has something to do)", old_catalog != fresh_catalog)
            before_rows = table_rows(c)
            before_served = served(c)
            deployments = c.execute("SELECT count(*) FROM txclass.deployments").fetchone()[0]

            c.execute("BEGIN")
            c.execute("ALTER EXTENSION txclass UPDATE")
            mid = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0]
            c.execute("ROLLBACK")
            after_rb = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0]
            check("ALTER EXTENSION UPDATE in a transaction that rolls back leaves 0.1.0 whole",
                  mid == version and after_rb == OLD and catalog(c) == old_catalog, f"{mid} then {after_rb}")

            paths = c.execute("SELECT path FROM pg_extension_update_paths('txclass') WHERE source = %s AND target = %s",
                              (OLD, version)).fetchone()
            c.execute("ALTER EXTENSION txclass UPDATE")
            now = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0]
            check(f"ALTER EXTENSION txclass UPDATE takes {OLD} to {version}", now == version, f"{now} via {paths}")
        # a new connection: what every backend sees after the update
        with psycopg.connect(oci, autocommit=True) as c:
            up_catalog = catalog(c)
            extra = sorted(set(up_catalog) - set(fresh_catalog))
            lost = sorted(set(fresh_catalog) - set(up_catalog))
            check(f"the upgraded schema equals a fresh {version} install ({len(fresh_catalog)} catalog lines)",
                  up_catalog == fresh_catalog and len(fresh_catalog) > 200,
                  f"only upgraded: {[x[:160] for x in extra[:4]]}; only fresh: {[x[:160] for x in lost[:4]]}")
            after_rows = table_rows(c, like=before_rows)
            changed = [t for t in before_rows if after_rows.get(t) != before_rows[t]]
            check(f"every row is still there ({len(before_rows)} tables, {sum(v[0] for v in before_rows.values())} rows)",
                  not changed and len(before_rows) >= 8 and before_rows["txns"][0] > 1000,
                  f"changed: {changed}")
            acl = c.execute("SELECT has_function_privilege('public', 'txclass.enrichment_status(regclass)', 'EXECUTE')").fetchone()[0]
            check("a privilege the DBA revoked on a recreated function stays revoked", acl is False)
            now_served = served(c)
            info = c.execute("SELECT model, inference FROM txclass.model_info()").fetchone()
            check("the active model still serves, and model_info() has 0.2.0's inference column",
                  now_served == before_served and now_served[0] == "relabelled" and info[1] == "worker", f"{before_served} -> {now_served}, {info}")
            c.execute("INSERT INTO txns (descriptor, posted) VALUES ('STARBUCKS STORE 12 OXFORD', '2017-04-01')")
            row = c.execute("SELECT txclass_label, split_part(txclass_model, '@', 1) FROM txns WHERE descriptor = 'STARBUCKS STORE 12 OXFORD'").fetchone()
            check("the trigger still enriches", row == ("Starbucks (renamed)", "relabelled"), str(row))
            status = c.execute("SELECT rows, enriched, problems FROM txclass.enrichment_status('txns')").fetchone()
            check("enrichment_status() has 0.2.0's problems column", status[0] == status[1] and status[2] == [], str(status))
            workers = c.execute("SELECT count(*) FROM txclass.worker_stats").fetchone()[0]
            check("0.2.0's worker_stats view is there", workers >= 0)
            rb = c.execute("SELECT model FROM txclass.rollback_model(reason => 'after the upgrade')").fetchone()[0]
            rb_served = served(c)[0]
            n = c.execute("SELECT count(*) FROM txclass.deployments").fetchone()[0]
            check("rollback reaches the 0.1.0 deployments", rb == "v1" and rb_served == "v1" and n == deployments + 1,
                  f"{rb}, serves {rb_served}, {deployments} -> {n} deployments")
            drift = c.execute("SELECT count(*) FROM txclass.drift('txns')").fetchone()[0]
            check("drift over the 0.1.0 summaries answers after the upgrade", drift > 0, f"{drift} rows")
            final_rows = table_rows(c)

        # pg_dump of the upgraded database restores on a fresh one
        args = flags.split()
        with psycopg.connect(base, autocommit=True) as c:
            c.execute("CREATE DATABASE restored")
        dump = subprocess.run(["pg_dump", *args, "-d", "old"], capture_output=True, text=True)
        rest = subprocess.run(["psql", *args, "-d", "restored", "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=dump.stdout,
                              capture_output=True, text=True)
        ok = dump.returncode == 0 and rest.returncode == 0
        with psycopg.connect(conninfo(flags, "restored"), autocommit=True) as r:
            restored_rows = table_rows(r, like=final_rows) if ok else {}
            same = {t: v for t, v in final_rows.items() if restored_rows.get(t) != v}
            check("pg_dump of the upgraded database restores into a new one with every row",
                  ok and not same and r.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0] == version,
                  f"{(dump.stderr + rest.stderr).strip()[:300]} differs: {list(same)[:5]}")
            rs = served(r)[0] if ok else None
            r.execute("SELECT txclass.activate_model('wide')")
            back = r.execute("SELECT model FROM txclass.rollback_model()").fetchone()[0] if ok else None
            check("the restored database serves the active model and its deployment log continues",
                  rs == "v1" and back == "v1", f"{rs}, rollback -> {back}")

        # labels (0.6.0 serves them at once): a 0.5.0 database on the new library serves none;
        # after the update, those given before have no model and are served by every model
        with psycopg.connect(base, autocommit=True) as c:
            c.execute("CREATE DATABASE labels05")
        with psycopg.connect(conninfo(flags, "labels05"), autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass VERSION '0.5.0'")
            c.execute("SELECT txclass.add_labels(ARRAY['EYRE & ELLISTON LTD'], ARRAY['Eyre & Elliston'])")
            q = "SELECT label, source FROM txclass.classify_transaction_detail('EYRE & ELLISTON LTD')"
            before = c.execute(q).fetchone()
            notices = []
            c.add_notice_handler(lambda d: notices.append(d.message_primary))
            c.execute("ALTER EXTENSION txclass UPDATE")
            after = c.execute(q).fetchone()
            model = c.execute("SELECT model FROM txclass.labels").fetchone()[0]
            c.execute("SELECT txclass.add_labels(ARRAY['HOTJAR'], ARRAY['Hotjar'])")
            stamped = c.execute("SELECT model FROM txclass.labels WHERE normalized = 'hotjar'").fetchone()[0]
        check("labels: a 0.5.0 database serves none on the new library; after the update, those given before are served "
              "(no model: every model), a WARNING says how many, a new label is stamped with the serving model",
              before[1] != "label" and after == ("Eyre & Elliston", "label") and model is None
              and any("the 1 labels given before" in n for n in notices) and stamped == "txclass-merchants-v3",
              f"{before} -> {after}, model {model}, notices {notices}, stamped {stamped}")
    finally:
        cluster("stop", "upgrade", 54391)
    test_live_library()
    check.finish()


if __name__ == "__main__":
    main()
