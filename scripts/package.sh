#!/usr/bin/env bash
# make package: binary packages in build/package/
#   postgresql-15-txclass_<version>_amd64.deb   Debian package for Debian's PostgreSQL 15
#   txclass-<version>-pg18-linux-x86_64.tar.gz   PostgreSQL 18, laid out like the server's own
#                                                 directories: tar -xzf … -C "$(pg_config --bindir)/.."
# Each holds the library, the control file, every install and upgrade script, the ONNX Runtime
# library (with its licence and notices), the bundled model, README and licence.
#   scripts/package.sh [15|18 ...]      (default: both)
source "$(dirname "$0")/common.sh"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
out="$BUILD/package"
mkdir -p "$out"

# stage MAJOR DIR: everything the extension installs, at the absolute paths pg_config names, under DIR
stage() {
  local major="$1" dir="$2" cfg pkglib share doc
  cfg="PG${major}_CONFIG"; cfg="${!cfg}"
  pkglib="$($cfg --pkglibdir)"; share="$($cfg --sharedir)"; doc="$3"
  rm -rf "$dir"; mkdir -p "$dir"
  log "building txclass $version for PostgreSQL $major (cargo pgrx package)"
  cargo pgrx package --pg-config "$cfg" --no-default-features --features "pg$major" --out-dir "$dir" \
    >"$BUILD/package-pg$major.log" 2>&1 || { tail -30 "$BUILD/package-pg$major.log"; exit 1; }
  [ -f "$dir$pkglib/txclass.so" ] && [ -f "$dir$share/extension/txclass--$version.sql" ] \
    || { echo "cargo pgrx package did not write $dir$pkglib/txclass.so and the install script" >&2; exit 1; }
  chmod 644 "$dir$pkglib/txclass.so"
  # released install scripts and every upgrade step (cargo pgrx writes the current install script)
  for f in sql/install/txclass--*.sql sql/upgrade/txclass--*--*.sql; do
    [ "$(basename "$f")" = "txclass--$version.sql" ] || install -m 644 "$f" "$dir$share/extension/"
  done
  install -d -m 755 "$dir$pkglib/txclass"
  install -m 644 "$ORT_DIR"/libonnxruntime*.so* "$dir$pkglib/txclass/"
  for d in models/*/; do
    [ -f "$d/model.onnx" ] || continue
    install -d -m 755 "$dir$share/txclass/models/$(basename "$d")"
    install -m 644 "$d"* "$dir$share/txclass/models/$(basename "$d")/"
  done
  install -d -m 755 "$dir$doc"
  install -m 644 README.md "$dir$doc/README.md"
  install -m 644 "$ORT_DIR/ThirdPartyNotices.txt" "$dir$doc/onnxruntime-ThirdPartyNotices.txt"
}

license_text() { sed 's/^/ /; s/^ *$/ ./' "$1"; }  # a licence as a copyright-format paragraph

copyright() {  # the licences: txclass (Apache-2.0) and what it ships (ONNX Runtime, MIT)
  cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: txclass
Source: this repository

Files: *
Copyright: the txclass authors
License: Apache-2.0
$(license_text LICENSE)

Files: usr/lib/postgresql/*/lib/txclass/libonnxruntime*
Copyright: Microsoft Corporation
License: MIT
$(license_text "$ORT_DIR/LICENSE")
 .
 Third-party notices: onnxruntime-ThirdPartyNotices.txt in this directory.
EOF
}

deb() {
  local dir="$out/stage-deb" pkg="postgresql-15-txclass" doc="/usr/share/doc/postgresql-15-txclass"
  stage 15 "$dir" "$doc"
  copyright >"$dir$doc/copyright"; chmod 644 "$dir$doc/copyright"
  install -d -m 755 "$dir/DEBIAN"
  local size; size="$(du -sk --exclude=DEBIAN "$dir" | cut -f1)"
  cat >"$dir/DEBIAN/control" <<EOF
Package: $pkg
Version: $version
Architecture: amd64
Maintainer: txclass maintainers <txclass@users.noreply.github.com>
Installed-Size: $size
Depends: postgresql-15, libc6 (>= 2.34), libgcc-s1, libstdc++6
Section: database
Priority: optional
Description: classify bank-transaction descriptors inside PostgreSQL 15
 txclass classifies card and bank descriptors ("SQ *BLUE BOTTLE COF 8473 OAKLAND CA")
 into merchants and categories with a BERT-family model run by ONNX Runtime inside the
 database: classify functions, a shared result cache, a model registry with rollback,
 enrichment triggers and drift views. Ships ONNX Runtime $ORT_VERSION (CPU) and the bundled
 model $BUNDLED_MODEL. Add txclass to shared_preload_libraries for the shared cache.
EOF
  (cd "$dir" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$dir/DEBIAN/md5sums"
  chmod 644 "$dir/DEBIAN/control" "$dir/DEBIAN/md5sums"
  local deb="$out/${pkg}_${version}_amd64.deb"
  dpkg-deb --root-owner-group -Zxz --build "$dir" "$deb" >/dev/null
  log "wrote $deb ($(du -h "$deb" | cut -f1))"
}

tarball() {
  local dir="$out/stage-pg18" prefix tgz="$out/txclass-$version-pg18-linux-x86_64.tar.gz"
  prefix="$(cd "$($PG18_CONFIG --bindir)/.." && pwd)"
  stage 18 "$dir" "$prefix/share/doc/txclass"
  install -m 644 LICENSE "$dir$prefix/share/doc/txclass/LICENSE"
  install -m 644 "$ORT_DIR/LICENSE" "$dir$prefix/share/doc/txclass/onnxruntime-LICENSE"
  # paths relative to the server's prefix: lib/…, share/extension/…, share/txclass/…
  tar --owner=0 --group=0 --numeric-owner --sort=name -czf "$tgz" -C "$dir$prefix" .
  log "wrote $tgz ($(du -h "$tgz" | cut -f1)); install: tar -xzf $(basename "$tgz") -C \"\$(pg_config --bindir)/..\""
}

for major in ${*:-15 18}; do
  case "$major" in
    15) deb ;;
    18) tarball ;;
    *) echo "no package for PostgreSQL $major (15: .deb, 18: tarball)" >&2; exit 1 ;;
  esac
done
