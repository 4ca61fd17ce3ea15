"""What the Python benchmarks share: a throwaway cluster (scripts/cluster.sh) and writing a
section of BENCHMARKS.md between its `<!-- name:begin ... -->` / `<!-- name:end -->` markers
(appended when the file has none yet), so each benchmark rewrites only its own section."""
import os
import re
import subprocess


def cluster(root, cmd, name, port, env=None):
    """Runs `scripts/cluster.sh cmd name port`; returns what it prints (the psql flags)."""
    e = dict(os.environ, **(env or {}))
    r = subprocess.run(["bash", os.path.join(root, "scripts", "cluster.sh"), cmd, name, str(port)],
                       capture_output=True, text=True, env=e)
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    return r.stdout.strip()


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
