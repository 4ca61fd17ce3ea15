"""What the Python benchmarks share: a throwaway cluster (scripts/cluster.sh) and writing a
section of BENCHMARKS.md between its `<!-- name:begin ... -->` / `<!-- name:end -->` markers
(appended when the file has none yet), so each benchmark rewrites only its own section."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import harness  # noqa: E402


def cluster(root, cmd, name, port, env=None):
    """Runs `scripts/cluster.sh cmd name port`; returns what it prints (the psql flags)."""
    return harness.cluster(cmd, name, port, env=env, root=root)


def write_section(root, name, md):
    """Replaces section `name` of BENCHMARKS.md with `md` (which carries its own markers)."""
    path = os.path.join(root, "BENCHMARKS.md")
    text = open(path).read()
    if f"<!-- {name}:begin" in text:
        text = re.sub(rf"<!-- {name}:begin.*?<!-- {name}:end -->", lambda _: md, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + md + "\n"
    open(path, "w").write(text)
    print(md)


def load_oxford(root, ci):
    """Every Oxford merchant string (../shared/data/oxford-pcard, every file, repeats kept: the
    real frequencies) into a new table ox (id int, d text), VACUUM ANALYZEd; returns the rows."""
    import csv
    import glob
    import psycopg
    rows = []
    for path in sorted(glob.glob(os.path.join(root, "..", "shared", "data", "oxford-pcard", "*.csv"))):
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows += [r.get("Merchant") or r.get("MCH.MERCHANT NAME") for r in csv.DictReader(fh)]
    rows = [r for r in rows if r]
    with psycopg.connect(ci, autocommit=True) as c:
        c.execute("CREATE TABLE ox (id int PRIMARY KEY, d text)")
        with c.cursor().copy("COPY ox FROM STDIN") as cp:
            for i, d in enumerate(rows, 1):
                cp.write_row((i, d))
        c.execute("VACUUM ANALYZE ox")
    return rows


def three_models(root, conn, fix):
    """harness.three_models: fixtures built into `fix`; v1, relabelled and wide registered; v1 active."""
    harness.three_models(conn, fix, root=root)
