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


def three_models(root, conn, fix):
    """harness.three_models: fixtures built into `fix`; v1, relabelled and wide registered; v1 active."""
    harness.three_models(conn, fix, root=root)
