"""Tiny psql-based client for the out-of-process tests (no driver dependency)."""
import os
import subprocess


def psql(conn, sql, stdin_data=None):
    cmd = ["psql", *conn.split(), "-d", os.environ.get("TXCLASS_TEST_DB", "postgres"), "-X", "-q", "-At",
           "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", sql]
    r = subprocess.run(cmd, input=stdin_data, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")
    return r.stdout


def psql_script(conn, script):
    cmd = ["psql", *conn.split(), "-d", os.environ.get("TXCLASS_TEST_DB", "postgres"), "-X", "-q", "-At",
           "-v", "ON_ERROR_STOP=1", "-F", "\t"]
    r = subprocess.run(cmd, input=script, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")
    return r.stdout
