#!/usr/bin/env bash
# Set-up from nothing, idempotent: Debian packages, cargo-pgrx (pinned), `cargo pgrx init`,
# ONNX Runtime from the PyPI wheel, a Python venv for the parity tests, build + install.
# A second run skips everything that is already there.
source "$(dirname "$0")/common.sh"
mkdir -p "$BUILD"

need_pkgs=()
for p in postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  if [ "$(id -u)" != 0 ]; then echo "run as root (or install ${need_pkgs[*]} yourself)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
id "$PGUSER_OS" >/dev/null 2>&1 || { log "creating OS user $PGUSER_OS"; useradd -m -s /bin/bash "$PGUSER_OS"; }

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  log "installing cargo-pgrx $PGRX_VERSION (about 5 minutes)"
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --quiet
fi
bash "$ROOT/scripts/fetch-pg18.sh"
if ! grep -qs "^pg15 = \"$PG15_CONFIG\"" "$HOME/.pgrx/config.toml" || ! grep -qs "^pg18 = \"$PG18_CONFIG\"" "$HOME/.pgrx/config.toml"; then
  log "cargo pgrx init --pg15 $PG15_CONFIG --pg18 $PG18_CONFIG"
  cargo pgrx init --pg15 "$PG15_CONFIG" --pg18 "$PG18_CONFIG" >/dev/null
fi

bash "$ROOT/scripts/fetch-onnxruntime.sh"

req_stamp="$PYVENV/.requirements.sha"
req_sum="$(sha256sum "$ROOT/tests/python/requirements.txt" | cut -c1-16)"
if [ "$(cat "$req_stamp" 2>/dev/null)" != "$req_sum" ] || ! "$PYVENV/bin/python" -c "import onnxruntime, tokenizers, numpy, onnx, psycopg" 2>/dev/null; then
  log "creating the test venv $PYVENV (onnxruntime, tokenizers, numpy, onnx, psycopg)"
  [ -x "$PYVENV/bin/python" ] || python3 -m venv "$PYVENV"
  "$PYVENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/python/requirements.txt"
  echo "$req_sum" >"$req_stamp"
fi

bash "$ROOT/scripts/install.sh" "$@"
log "set-up complete"
