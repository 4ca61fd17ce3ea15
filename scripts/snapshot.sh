#!/usr/bin/env bash
# Writes sql/install/txclass--<version>.sql: the install script this build generates, less
# pgrx's `-- src/file.rs:LINE` comments. Run it after a schema change, together with the
# upgrade step sql/upgrade/txclass--<previous>--<version>.sql; the upgrade tier checks both.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
bash scripts/install.sh
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
grep -Ev '^-- src/[^ ]+:[0-9]+$' "$($PG_CONFIG --sharedir)/extension/txclass--$version.sql" >"sql/install/txclass--$version.sql"
log "wrote sql/install/txclass--$version.sql"
