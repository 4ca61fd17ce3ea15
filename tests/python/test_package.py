#!/usr/bin/env python3
"""Package tier: what `make package` builds, installed on this machine in place of what
`make install` put there, used, and removed without a trace.

  PostgreSQL 15: build/package/postgresql-15-txclass_<version>_amd64.deb with
                 `apt-get install ./…deb`, removed with `apt-get purge`;
  PostgreSQL 18: build/package/txclass-<version>-pg18-linux-x86_64.tar.gz unpacked into the
                 server's prefix, removed file by file from its listing.

  1. the development install is removed first, and nothing of txclass is left in the server's
     directories (so the package alone must serve);
  2. the package holds the library, the control file, every install and upgrade script, the
     ONNX Runtime library, the bundled model, README and licence (the .deb also its Depends on
     postgresql-15);
  3. a cluster with shared_preload_libraries: CREATE EXTENSION, classify (with the packaged
     ONNX Runtime and the shared cache), DROP EXTENSION; then 0.1.0 from the packaged frozen
     script, ALTER EXTENSION UPDATE, classify, DROP EXTENSION, and the two statements the
     README gives for what DROP EXTENSION leaves (the schema, the cluster-wide role) succeed
     without CASCADE;
  4. after the purge (or removal) nothing of txclass is left; the development install is put
     back (scripts/install.sh).

    test_package.py <repo root>
Prints 'package: N passed, M failed'.
"""
import os
import re
import subprocess
import sys

import psycopg

from harness import Checks, cluster, conninfo

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_CONFIG = os.environ.get("PG_CONFIG", "/usr/lib/postgresql/15/bin/pg_config")
check = Checks("package")


def pg_config(flag):
    return subprocess.run([PG_CONFIG, flag], capture_output=True, text=True, check=True).stdout.strip()


MAJOR = re.match(r"PostgreSQL (\d+)", pg_config("--version")).group(1)
PKGLIB, SHARE = pg_config("--pkglibdir"), pg_config("--sharedir")
PREFIX = os.path.realpath(os.path.join(pg_config("--bindir"), ".."))
VERSION = re.search(r'^version = "([^"]+)"', open(os.path.join(ROOT, "Cargo.toml")).read(), re.M).group(1)
OUT = os.path.join(ROOT, "build", "package")
DEB_NAME = f"postgresql-{MAJOR}-txclass"
DEB = os.path.join(OUT, f"{DEB_NAME}_{VERSION}_amd64.deb")
TGZ = os.path.join(OUT, f"txclass-{VERSION}-pg{MAJOR}-linux-x86_64.tar.gz")
DOCS = [f"/usr/share/doc/{DEB_NAME}", os.path.join(SHARE, "doc", "txclass")]


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


def leftovers():
    """Every txclass file or directory in the server's directories."""
    found = []
    for base in [PKGLIB, os.path.join(SHARE, "extension"), SHARE] + [os.path.dirname(d) for d in DOCS]:
        if os.path.isdir(base):
            found += [os.path.join(base, n) for n in os.listdir(base) if n.startswith("txclass") or n == DEB_NAME]
    return sorted(set(found))


def remove_dev_install():
    sh("rm", "-rf", os.path.join(PKGLIB, "txclass.so"), os.path.join(PKGLIB, "txclass"), os.path.join(SHARE, "txclass"),
       *[os.path.join(SHARE, "extension", n) for n in os.listdir(os.path.join(SHARE, "extension")) if n.startswith("txclass")],
       *DOCS)


def contents_ok(files, doc):
    ext = os.path.join(SHARE, "extension")
    scripts = [f"txclass--{os.path.basename(p)[len('txclass--'):]}" for p in
               os.listdir(os.path.join(ROOT, "sql", "install")) + os.listdir(os.path.join(ROOT, "sql", "upgrade"))]
    want = [os.path.join(PKGLIB, "txclass.so"), os.path.join(ext, "txclass.control"),
            *[os.path.join(ext, s) for s in scripts],
            os.path.join(PKGLIB, "txclass", "libonnxruntime.so.1.31.1"),
            os.path.join(SHARE, "txclass", "models", "txclass-merchants-v1", "model.onnx"),
            os.path.join(SHARE, "txclass", "models", "txclass-merchants-v1", "config.json"),
            os.path.join(SHARE, "txclass", "models", "txclass-merchants-v1", "tokenizer.json"),
            os.path.join(SHARE, "txclass", "models", "txclass-merchants-v2", "model.onnx"),
            os.path.join(SHARE, "txclass", "models", "txclass-merchants-v2", "config.json"),
            os.path.join(SHARE, "txclass", "models", "txclass-merchants-v3", "model.onnx"),
            os.path.join(SHARE, "txclass", "models", "txclass-merchants-v3", "config.json"),
            os.path.join(doc, "README.md")]
    missing = [w for w in want if w not in files]
    licence = any(f.startswith(doc) and os.path.basename(f) in ("copyright", "LICENSE") for f in files)
    return not missing and licence, missing


def smoke(tag):
    flags = cluster("start", "package", 54395)
    try:
        with psycopg.connect(conninfo(flags), autocommit=True) as c:
            c.execute("CREATE EXTENSION txclass")
            v = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0]
            label = c.execute("SELECT txclass.classify_transaction('STARBUCKS STORE 1 OXFORD')").fetchone()[0]
            mode = c.execute("SELECT inference FROM txclass.model_info()").fetchone()[0]
            # the default (preloaded) serves from the workers; a backend session of its own loads
            # the packaged ONNX Runtime itself
            c.execute("SET txclass.inference = 'backend'")
            label2 = c.execute("SELECT txclass.classify_transaction('SHELL OIL 2 OXFORD')").fetchone()[0]
            lib = c.execute("SELECT onnxruntime_library FROM txclass.model_info()").fetchone()[0]
            shared = c.execute("SELECT shared FROM txclass.cache_stats").fetchone()[0]
            check(f"{tag}: CREATE EXTENSION {VERSION} and classify with the packaged ONNX Runtime and the shared cache",
                  v == VERSION and label == "Starbucks" and mode == "worker" and label2 == "Shell"
                  and lib == os.path.join(PKGLIB, "txclass", "libonnxruntime.so.1.31.1") and shared,
                  f"{v}, {label}, {mode}, {label2}, {lib}, shared {shared}")
            c.execute("DROP EXTENSION txclass")
            c.execute("CREATE EXTENSION txclass VERSION '0.1.0'")
            c.execute("ALTER EXTENSION txclass UPDATE")
            v = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'txclass'").fetchone()[0]
            label = c.execute("SELECT txclass.classify_transaction('TESCO STORES 3')").fetchone()[0]
            c.execute("DROP EXTENSION txclass")
            # what the README says DROP EXTENSION leaves: the schema named in the control file
            # (PostgreSQL creates it before the extension, so it is no member) and the
            # cluster-wide role; both drop without CASCADE, so nothing else of txclass is left
            c.execute("DROP SCHEMA txclass")
            c.execute("DROP ROLE txclass_model_admin, txclass_labeler")
            left = c.execute("""SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'txclass%%')
                                     + (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'txclass%%')
                                     + (SELECT count(*) FROM pg_proc WHERE proname LIKE '%%txclass%%' OR probin LIKE '%%txclass%%')""").fetchone()[0]
            check(f"{tag}: 0.1.0 from the packaged script, ALTER EXTENSION UPDATE, classify, DROP EXTENSION "
                  "(then DROP SCHEMA txclass and DROP ROLE txclass_model_admin, txclass_labeler succeed without CASCADE: nothing else left)",
                  v == VERSION and label == "Tesco" and left == 0, f"{v}, {label}, left: {left}")
    finally:
        cluster("stop", "package", 54395)


def test_deb():
    r = sh("bash", os.path.join(ROOT, "scripts", "package.sh"), MAJOR)
    check(f"make package builds {os.path.basename(DEB)}", r.returncode == 0 and os.path.exists(DEB), r.stderr[-400:])
    if not os.path.exists(DEB):
        return
    info = sh("dpkg-deb", "--field", DEB, "Package", "Version", "Depends").stdout
    check("its control names the package, the version and postgresql-15", f"Package: {DEB_NAME}" in info
          and f"Version: {VERSION}" in info and "postgresql-15" in info, info.replace("\n", "; "))
    remove_dev_install()
    check("the development install is removed first", leftovers() == [], str(leftovers()))
    r = sh("apt-get", "install", "-y", "--no-install-recommends", DEB, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    check("apt-get install ./…deb", r.returncode == 0, (r.stdout + r.stderr)[-400:])
    files = sh("dpkg", "-L", DEB_NAME).stdout.split()
    ok, missing = contents_ok(files, DOCS[0])
    check("the package holds the library, control file, every install and upgrade script, ONNX Runtime, the model, README and licence",
          ok, f"{len(files)} paths, missing {missing}")
    smoke(".deb")
    r = sh("apt-get", "purge", "-y", DEB_NAME, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    status = sh("dpkg-query", "-W", "-f", "${Status}", DEB_NAME).stdout
    check("apt-get purge leaves nothing of txclass behind", r.returncode == 0 and "installed" not in status.replace("not-installed", "")
          and leftovers() == [], f"{status!r}, left {leftovers()}")


def test_tarball():
    r = sh("bash", os.path.join(ROOT, "scripts", "package.sh"), MAJOR)
    check(f"make package builds {os.path.basename(TGZ)}", r.returncode == 0 and os.path.exists(TGZ), r.stderr[-400:])
    if not os.path.exists(TGZ):
        return
    names = [n[2:] if n.startswith("./") else n for n in sh("tar", "-tzf", TGZ).stdout.split()]
    check("it is laid out like the server's directories (lib/, share/ under the prefix)",
          names and all(n == "" or n.split("/")[0] in ("lib", "share") for n in names), str(sorted({n.split('/')[0] for n in names})))
    remove_dev_install()
    check("the development install is removed first", leftovers() == [], str(leftovers()))
    r = sh("tar", "-xzf", TGZ, "-C", PREFIX)
    files = [os.path.join(PREFIX, n).rstrip("/") for n in names if n]
    ok, missing = contents_ok(files, os.path.join(SHARE, "doc", "txclass"))
    check("unpacked into the prefix: the library, control file, every install and upgrade script, ONNX Runtime, the model, README and licence",
          r.returncode == 0 and ok and all(os.path.exists(f) for f in files), f"missing {missing}")
    smoke("tarball")
    for f in sorted(files, key=len, reverse=True):  # files, then the directories it created, deepest first
        if os.path.isfile(f) or os.path.islink(f):
            os.unlink(f)
    for f in sorted(files, key=len, reverse=True):
        if os.path.isdir(f) and "txclass" in f[len(PREFIX):] and not os.listdir(f):
            os.rmdir(f)
    check("removing what it listed leaves nothing of txclass behind", leftovers() == [], str(leftovers()))


def main():
    if os.geteuid() != 0:
        check("the package tier installs system packages: run it as root", False)
        check.finish()
    try:
        if MAJOR == "15":
            test_deb()
        else:
            test_tarball()
    finally:
        r = sh("bash", os.path.join(ROOT, "scripts", "install.sh"), "--force")
        check("the development install is put back", r.returncode == 0 and os.path.exists(os.path.join(PKGLIB, "txclass.so")),
              r.stderr[-300:])
    check.finish()


if __name__ == "__main__":
    main()
