#!/usr/bin/env bash
# Builds and installs Citus for the PostgreSQL of $PG_CONFIG from the release sources in
# ../shared/citus (13.2.2 for 15, 14.0.1 for 18: Citus 14 dropped 15). A test dependency, built
# as released; the build is cached under $TXCLASS_CACHE (default /var/cache/txclass), keyed by
# the tarball's checksum and the major, so a second run (and CI on the same machine) only copies
# it into place. Prints nothing on success but the log lines.
source "$(dirname "$0")/common.sh"
case "$PG_MAJOR" in
  15) ver=13.2.2; sha=665340f3c85afdaf7db52e6a61661abcbea4896dca87e424771de19d6e7a4a68 ;;
  16|17|18) ver=14.0.1; sha=1bb694cc81ce2a8773f36829ec96a50e3feb6347246aeab2a4418d6f4d07ae69 ;;
  *) echo "no Citus release for PostgreSQL $PG_MAJOR" >&2; exit 1 ;;
esac
tarball="${TXCLASS_CITUS_DIR:-$ROOT/../shared/citus}/citus-$ver.tar.gz"
pkglib="$($PG_CONFIG --pkglibdir)"
stamp="$pkglib/citus.txclass-stamp"
if [ -f "$pkglib/citus.so" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ver $sha" ]; then
  exit 0
fi
[ -f "$tarball" ] || { echo "Citus sources not found: $tarball (see ../shared/citus/README.md)" >&2; exit 1; }
echo "$sha  $tarball" | sha256sum -c --quiet - || { echo "$tarball: checksum differs from $sha" >&2; exit 1; }
need=()
for p in liblz4-dev libzstd-dev libkrb5-dev clang-14; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing Citus' build dependencies: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cache="${TXCLASS_CACHE:-/var/cache/txclass}/citus-$ver-pg$PG_MAJOR-${sha:0:12}-$(echo "$PG_CONFIG" | sha256sum | cut -c1-8)"
if [ ! -f "$cache/done" ]; then
  log "building Citus $ver for PostgreSQL $PG_MAJOR (about 2 minutes; cached in $cache)"
  src="$(mktemp -d)"; trap 'rm -rf "$src"' EXIT
  tar xzf "$tarball" -C "$src"
  cd "$src/citus-$ver"
  if [ "$PG_MAJOR" = 15 ]; then
    # 15.20's dbcommands.h declares have_createdb_privilege() extern, Citus' compat header a
    # static copy: rename Citus' (../shared/citus/README.md)
    sed -i '/^have_createdb_privilege(void)$/i #define have_createdb_privilege citus_have_createdb_privilege' \
      src/include/pg_version_compat.h
    cc=()
  else
    cc=(CC=clang-14)   # the wheel's server was built with flags gcc 12 rejects
  fi
  ./configure -q --without-libcurl "${cc[@]}" PG_CONFIG="$PG_CONFIG" >"$src/configure.log" 2>&1 \
    || { tail -30 "$src/configure.log"; exit 1; }
  make -s -j"$(nproc)" >"$src/make.log" 2>&1 || { tail -40 "$src/make.log"; exit 1; }
  rm -rf "$cache"; mkdir -p "$cache"
  make -s install DESTDIR="$cache/root" >"$src/install.log" 2>&1 || { tail -20 "$src/install.log"; exit 1; }
  touch "$cache/done"
  cd "$ROOT"
fi
cp -a "$cache/root/." /
echo "$ver $sha" >"$stamp"
log "Citus $ver installed into $(dirname "$pkglib")"
