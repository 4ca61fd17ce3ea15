#!/usr/bin/env bash
# Fetches libonnxruntime.so, its LICENSE and ThirdPartyNotices.txt (shipped in the packages)
# from the PyPI wheel onnxruntime==$ORT_VERSION into build/onnxruntime/.
# Idempotent: does nothing when they are already there.
source "$(dirname "$0")/common.sh"
if [ -f "$ORT_LIB" ] && [ -f "$ORT_DIR/LICENSE" ]; then exit 0; fi
log "fetching ONNX Runtime $ORT_VERSION from the PyPI wheel"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "onnxruntime==$ORT_VERSION"
whl="$(ls "$tmp"/onnxruntime-*.whl | head -1)"
mkdir -p "$ORT_DIR"
python3 - "$whl" "$ORT_DIR" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if (n.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime")) or \
                n in ("onnxruntime/LICENSE", "onnxruntime/ThirdPartyNotices.txt"):
            with z.open(n) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
PY
ls "$ORT_LIB" >/dev/null
log "ONNX Runtime library: $ORT_LIB"
