"""Busy backends for the registry tests and the switch benchmark: N connections, each
classifying in a loop and recording which model answered, so that the time from an
activation's commit until every backend serves the new model can be measured.
"""
import threading
import time

import psycopg

# Starbucks is labelled "Starbucks" by the bundled model (and by the 5,000-class fixture) and
# "Starbucks (renamed)" by the relabelled fixture: a label that does not fit the model identity
# returned with it is a result attributed to the wrong model.
# In FROM, the function runs once per row; `(f(x)).a, (f(x)).b` would run it once per column,
# and a switch between the two calls would mix two models' answers in one row.
PROBE = "SELECT d.model, d.label FROM txclass.classify_transaction_detail('STARBUCKS STORE ' || %s) d"
EXPECTED_LABEL = {"relabelled": "Starbucks (renamed)"}


def model_name(identity):
    return identity.split("@", 1)[0]


class BusyBackends:
    def __init__(self, conninfo, n):
        self.conninfo = conninfo
        self.n = n
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.latest = [None] * n          # (time the answer arrived, model name) per backend
        self.first_seen = [dict() for _ in range(n)]   # model name -> first arrival time
        self.calls = [0] * n
        self.errors = []
        self.mislabelled = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]

    def run(self, i):
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                k = 0
                while not self.stop.is_set():
                    k += 1
                    identity, label = conn.execute(PROBE, (str(k % 50),)).fetchone()
                    now = time.monotonic()
                    name = model_name(identity)
                    want = EXPECTED_LABEL.get(name, "Starbucks")
                    with self.lock:
                        self.calls[i] += 1
                        self.latest[i] = (now, name)
                        self.first_seen[i].setdefault(name, now)
                        if label != want:
                            self.mislabelled.append((identity, label))
        except Exception as e:  # noqa: BLE001 - every error is a finding
            with self.lock:
                self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        deadline = time.monotonic() + 60
        while any(x is None for x in self.latest) and time.monotonic() < deadline and not self.errors:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def wait_all_serve(self, name, since, timeout=30.0):
        """Seconds from `since` (an activation's commit) until every backend has answered with
        model `name` (None if some never did within `timeout`). Call forget() before the
        activation: first answers are counted from then (an answer can beat the client's view
        of the commit, which then counts as 0)."""
        deadline = since + timeout
        while time.monotonic() < deadline:
            with self.lock:
                firsts = [f.get(name) for f in self.first_seen]
                latest = list(self.latest)
            done = [max(f - since, 0.0) for f, l in zip(firsts, latest) if f is not None and l[1] == name]
            if len(done) == self.n:
                return max(done)
            if self.errors:
                return None
            time.sleep(0.01)
        return None

    def forget(self):
        with self.lock:
            self.first_seen = [dict() for _ in range(self.n)]


def activate(conninfo, sql):
    """Runs an activation or rollback; returns the monotonic time right after its commit."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)
        return time.monotonic()
