#!/usr/bin/env bash
# The registry benchmark (switch latency under 16 busy backends, class count, rules), one run,
# into BENCHMARKS.md (section "registry"). See bench/registry.py.
source "$(dirname "$0")/../scripts/common.sh"
cd "$ROOT"
bash scripts/setup.sh
trap 'bash "$ROOT/scripts/cluster.sh" stop benchregistry >/dev/null 2>&1 || true' EXIT
"$PYVENV/bin/python" bench/registry.py "$ROOT"
