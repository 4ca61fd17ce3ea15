#!/usr/bin/env bash
# A throwaway PostgreSQL cluster run by an unprivileged OS user (Postgres refuses root).
#   scripts/cluster.sh start NAME [PORT]   initdb (if needed) + start; prints the psql connection flags
#   scripts/cluster.sh restart NAME [PORT] restart it (shared memory starts empty)
#   scripts/cluster.sh standby NAME PORT PRIMARY   a hot standby of the running cluster PRIMARY
#   scripts/cluster.sh halt NAME           stop it, keeping its data
#   scripts/cluster.sh stop NAME           stop and delete it
# Environment: TXCLASS_NO_PRELOAD=1 starts it without shared_preload_libraries, TXCLASS_PRELOAD
# with other ones (e.g. "citus,txclass");
# TXCLASS_CLUSTER_CONF holds extra postgresql.conf lines (e.g. "txclass.cache_entries = 64").
# Data lives in build/clusters/NAME (or /tmp/txclass-clusters/NAME when the postgres user
# cannot reach build/), the socket in /tmp/txclass.NAME, and it listens on 127.0.0.1:PORT.
source "$(dirname "$0")/common.sh"
cmd="${1:?start|stop}"; name="${2:?cluster name}"; port="${3:-54329}"
base="$BUILD/clusters"
mkdir -p "$base" 2>/dev/null || true
if [ "$(id -u)" = 0 ]; then
  chown "$PGUSER_OS" "$base" 2>/dev/null || true
  as_pg test -w "$base" 2>/dev/null || base="/tmp/txclass-clusters"
  mkdir -p "$base"; chown "$PGUSER_OS" "$base"
fi
data="$base/$name"; sock="/tmp/txclass.$name"
case "$cmd" in
  start)
    if [ ! -f "$data/PG_VERSION" ]; then
      as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
      cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
shared_preload_libraries = '$([ "${TXCLASS_NO_PRELOAD:-0}" = 1 ] || echo "${TXCLASS_PRELOAD:-txclass}")'
max_connections = 60
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
${TXCLASS_CLUSTER_CONF:-}
CONF
    fi
    mkdir -p "$sock"; [ "$(id -u)" = 0 ] && chown "$PGUSER_OS" "$sock"
    unset RUST_BACKTRACE   # else every Rust-side ERROR carries a backtrace in its DETAIL
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null || { tail -30 "$data/server.log"; exit 1; }
    echo "-h $sock -p $port -U postgres"
    ;;
  standby)
    # a hot standby of the running cluster PRIMARY (argument 4) listening on PORT
    primary="${4:?primary cluster name}"; psock="/tmp/txclass.$primary"
    rm -rf "$data"; mkdir -p "$sock"; [ "$(id -u)" = 0 ] && chown "$PGUSER_OS" "$sock"
    pport="$(awk -F'= *' '/^port *=/{print $2}' "$base/$primary/postgresql.conf" | tail -1)"
    as_pg "$PG_BIN/pg_basebackup" -h "$psock" -p "$pport" -U postgres -D "$data" -R -X stream -c fast >/dev/null
    cat >>"$data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$sock'
hot_standby = on
CONF
    unset RUST_BACKTRACE
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null || { tail -30 "$data/server.log"; exit 1; }
    echo "-h $sock -p $port -U postgres"
    ;;
  restart)
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -m fast -w -t 60 restart >/dev/null || { tail -30 "$data/server.log"; exit 1; }
    echo "-h $sock -p $port -U postgres"
    ;;
  halt)
    # stop it, keeping its data (start brings it back)
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
    ;;
  stop)
    if [ -f "$data/postmaster.pid" ]; then as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true; fi
    rm -rf "$data" "$sock"
    ;;
  *) echo "usage: $0 start|restart|standby|halt|stop NAME [PORT] [PRIMARY]" >&2; exit 2 ;;
esac
