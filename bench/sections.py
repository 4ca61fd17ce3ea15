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
    """Builds the test fixtures into `fix` and registers three models that answer differently —
    'v1' (bundled, 372 classes), 'relabelled' (same graph, renamed labels), 'wide' (5,000 classes)
    — then activates v1. `conn`: a superuser connection to a database with the extension."""
    subprocess.run([os.path.join(root, "build", "venv", "bin", "python"), os.path.join(root, "tests", "python", "make_fixtures.py"),
                    os.path.join(root, "models", "txclass-merchants-v1"), fix], check=True, capture_output=True)
    conn.execute("SELECT txclass.register_model('v1', 'txclass-merchants-v1')")
    conn.execute(f"SELECT txclass.register_model('relabelled', '{fix}/relabelled')")
    conn.execute(f"SELECT txclass.register_model('wide', '{fix}/wide5000')")
    conn.execute("SELECT txclass.activate_model('v1')")
