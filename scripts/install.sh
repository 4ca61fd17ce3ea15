#!/usr/bin/env bash
# Builds the extension (release) and installs it into the PostgreSQL found by $PG_CONFIG,
# together with the ONNX Runtime library and the bundled models. Skips the build when nothing
# changed since the last install.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
PKGLIB="$($PG_CONFIG --pkglibdir)"
SHARE="$($PG_CONFIG --sharedir)"
stamp="$BUILD/install-pg$PG_MAJOR.stamp"
sum="$( (cat Cargo.toml Cargo.lock txclass.control; find src core/src sql -type f | sort | xargs cat) 2>/dev/null | sha256sum | cut -c1-16)"
installed() { [ -f "$PKGLIB/txclass.so" ] && sha256sum "$PKGLIB/txclass.so" | cut -c1-16; }
# the stamp records the sources and the installed library: `cargo pgrx test` replaces the
# library with a debug build, which forces a reinstall here
if [ "${1:-}" = "--force" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum $(installed)" ]; then
  log "building and installing txclass (release) for PostgreSQL $PG_MAJOR"
  mkdir -p "$BUILD"
  cargo pgrx install --release --pg-config "$PG_CONFIG" "${PGRX_FEATURES[@]}" >"$BUILD/install.log" 2>&1 || { tail -40 "$BUILD/install.log"; exit 1; }
  echo "$sum $(installed)" >"$stamp"
else
  log "txclass is installed and up to date"
fi
install_extras() {
  # released install scripts (frozen) and every upgrade step; the current version's install
  # script is the one cargo pgrx just generated (sql/install/ keeps its snapshot)
  local version; version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
  for f in sql/install/txclass--*.sql sql/upgrade/txclass--*--*.sql; do
    [ -f "$f" ] || continue
    [ "$(basename "$f")" = "txclass--$version.sql" ] && continue
    cmp -s "$f" "$SHARE/extension/$(basename "$f")" || install -m 644 "$f" "$SHARE/extension/"
  done
  install -d -m 755 "$PKGLIB/txclass"
  for f in "$ORT_DIR"/libonnxruntime*; do
    cmp -s "$f" "$PKGLIB/txclass/$(basename "$f")" || install -m 755 "$f" "$PKGLIB/txclass/"
  done
  install -d -m 755 "$SHARE/txclass/models"
  for d in "$ROOT"/models/*/; do
    [ -f "$d/model.onnx" ] || continue
    name="$(basename "$d")"
    install -d -m 755 "$SHARE/txclass/models/$name"
    for f in "$d"*; do
      [ -f "$f" ] && { cmp -s "$f" "$SHARE/txclass/models/$name/$(basename "$f")" || install -m 644 "$f" "$SHARE/txclass/models/$name/"; }
    done
  done
}
install_extras
