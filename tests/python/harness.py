"""What the Python test tiers share: pass/fail bookkeeping with the summary line scripts/test.sh
counts, throwaway clusters (scripts/cluster.sh), a cluster's server log, and the labeled Oxford
file loaded into a table."""
import csv
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OXFORD_LABELED = os.path.join(ROOT, "..", "shared", "data", "oxford-pcard", "procurement-card-spending-jan-mar-2017.csv")


class Checks:
    """check(name, ok, detail) prints one line per check; finish() prints
    '<tier>: N passed, M failed' and exits non-zero on a failure."""

    def __init__(self, tier):
        self.tier = tier
        self.results = []

    def __call__(self, name, ok, detail=""):
        self.results.append(bool(ok))
        print(f"{'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}", flush=True)

    def finish(self):
        failed = self.results.count(False)
        print(f"{self.tier}: {len(self.results) - failed} passed, {failed} failed")
        sys.exit(1 if failed else 0)


def cluster(cmd, name, port, env=None, root=ROOT):
    """`scripts/cluster.sh cmd name port`; returns what it prints (the psql connection flags)."""
    e = dict(os.environ, **(env or {}))
    r = subprocess.run(["bash", os.path.join(root, "scripts", "cluster.sh"), cmd, name, str(port)],
                       capture_output=True, text=True, env=e)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    return r.stdout.strip()


def conninfo(flags, dbname="postgres"):
    """A libpq connection string from cluster()'s '-h SOCK -p PORT -U USER'."""
    f = flags.split()
    return f"host={f[1]} port={f[3]} user={f[5]} dbname={dbname}"


def maps_onnxruntime(pid):
    """Whether the server process `pid` has ONNX Runtime mapped (None: its maps are unreadable)."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8") as fh:
            return "libonnxruntime" in fh.read()
    except OSError:
        return None


def server_log(name, root=ROOT):
    """The server log of cluster `name` (wherever cluster.sh put its data), or ''."""
    for base in [os.path.join(root, "build", "clusters"), "/tmp/txclass-clusters"]:
        p = os.path.join(base, name, "server.log")
        if os.path.exists(p):
            return open(p, errors="replace").read()
    return ""


def three_models(conn, fix, root=ROOT):
    """Builds the test fixtures into `fix` and registers three models that answer differently —
    'v1' (bundled, 372 classes), 'relabelled' (same graph, 'Starbucks' renamed), 'wide' (5,000
    classes) — then activates v1. `conn`: a superuser connection to a database with the extension."""
    py = os.path.join(root, "build", "venv", "bin", "python")
    subprocess.run([py if os.path.exists(py) else sys.executable, os.path.join(root, "tests", "python", "make_fixtures.py"),
                    os.path.join(root, "models", "txclass-merchants-v1"), fix], check=True, capture_output=True)
    conn.execute("SELECT txclass.register_model('v1', 'txclass-merchants-v1')")
    conn.execute(f"SELECT txclass.register_model('relabelled', '{fix}/relabelled')")
    conn.execute(f"SELECT txclass.register_model('wide', '{fix}/wide5000')")
    conn.execute("SELECT txclass.activate_model('v1')")


def load_oxford_labels(conn, table="oxford_labels", path=OXFORD_LABELED):
    """The labeled Oxford file as (id, descriptor = Merchant, label = Transaction description, time)."""
    conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, descriptor text, label text, time date)")
    with open(path, newline="", encoding="utf-8-sig") as fh, \
            conn.cursor().copy(f"COPY {table} (descriptor, label, time) FROM STDIN") as cp:
        for r in csv.DictReader(fh):
            d, m, y = r["Date"].split("/")
            cp.write_row((r["Merchant"], r["Transaction description"] or None, f"{y}-{m}-{d}"))
