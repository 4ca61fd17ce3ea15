# Shared settings for txclass scripts. Source it; do not run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PG_BIN="$($PG_CONFIG --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)"
PGRX_VERSION="0.18.1"
ORT_VERSION="1.31.1"
ORT_DIR="$BUILD/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
PYVENV="$BUILD/venv"
BUNDLED_MODEL="txclass-merchants-v1"
export PATH="$HOME/.cargo/bin:$PATH"
# Postgres refuses to run as root: servers started by these scripts run as this user.
PGUSER_OS="${TXCLASS_OS_USER:-postgres}"
log() { printf '\033[1m[txclass]\033[0m %s\n' "$*" >&2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PGUSER_OS" -- "$@"; else "$@"; fi; }
