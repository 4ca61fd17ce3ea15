#!/usr/bin/env python3
"""The Oxford replay (scripts/oxford_drift.sh) on its own cluster: the real card months go
through the trigger, the drift summaries and both baselines; checks one row per month with a
status for every metric, and the HTML report.

    test_drift.py <repo root>
Prints 'drift: N passed, M failed'.
"""
import os
import re
import subprocess
import sys

from harness import Checks

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
check = Checks("drift")


def main():
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "oxford_drift.sh")], capture_output=True, text=True)
    out = r.stdout
    check("the Oxford replay runs", r.returncode == 0, r.stderr.strip()[-300:])
    sections = out.split("== ")
    training = next((s for s in sections if s.startswith("Oxford card spending")), "")
    window = next((s for s in sections if s.startswith("the same months")), "")
    month_rows = lambda s: re.findall(r"^ (20\d\d-\d\d-01) \|", s, re.M)  # noqa: E731
    check("one row per month against the training distribution (14 months, Jan 2017 - Feb 2018)",
          len(month_rows(training)) == 14, f"{len(month_rows(training))} rows")
    check("one row per month against the reference window", len(month_rows(window)) == 14, f"{len(month_rows(window))} rows")
    statuses = re.findall(r"\| (ok|warn|alert|n/a) +\| (ok|warn|alert|n/a) +\| (ok|warn|alert|n/a) +\| (ok|warn|alert|n/a) +\| (ok|warn|alert|n/a)", window)
    check("every month has a status for each metric and overall", len(statuses) == 14, f"{len(statuses)} rows with statuses")
    inside = [s for s in statuses[:3]]
    check("inside the reference window there is nothing to be new against (n/a)", all(s[3] == "n/a" for s in inside), str(inside))
    html = os.path.join(ROOT, "build", "drift-oxford.html")
    body = open(html).read() if os.path.exists(html) else ""
    check("the HTML report has both charts and a row per month", body.count("<svg") == 2 and body.count("<tr><td>20") == 14,
          f"{len(body)} bytes")
    check.finish()


if __name__ == "__main__":
    main()
