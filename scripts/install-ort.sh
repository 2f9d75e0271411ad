#!/usr/bin/env bash
# Installs the ONNX Runtime shared library, taken out of the PyPI wheel so nothing is fetched
# from anywhere but the package registry, into the per-user cache (scripts/cache-dir.sh) and
# links it into the checkout:
#   bash scripts/install-ort.sh          CPU build   (onnxruntime)      -> .ort/cpu/
#   bash scripts/install-ort.sh --gpu    CUDA + TensorRT providers (onnxruntime-gpu) -> .ort/gpu/
# The runtime looks at $ORT_DYLIB_PATH first, then .ort/gpu/, then .ort/cpu/. The GPU build
# also needs the CUDA, cuDNN and TensorRT libraries of the machine it runs on.
# The version is pinned to one that `ort` 2.0.0-rc.15 (ONNX Runtime API 24+) supports. A
# cached install is used only when its libraries still match the SHA-256 sums the wheel's
# RECORD gave them at install; otherwise it is installed again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cache-dir.sh

ORT_VERSION="1.31.1"
package="onnxruntime"
link=".ort/cpu"
case "${1:-}" in
    "") ;;
    --gpu) package="onnxruntime-gpu"; link=".ort/gpu" ;;
    *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
esac
dest="$cache_dir/$package-$ORT_VERSION"

verified() {
    [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$package==$ORT_VERSION" ] \
        && [ -e "$dest/libonnxruntime.so" ] \
        && (cd "$dest" && sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1)
}

# One install at a time per cache entry (two checkouts may run their tests together).
exec 9>"$dest.lock"
flock 9
if ! verified; then
    if [ -e "$dest" ]; then
        echo "==> $dest does not verify (version or SHA-256): installing again"
    fi
    python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "error: $python not found; it is needed to fetch the $package wheel from PyPI" >&2
        exit 1
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "==> fetching $package==$ORT_VERSION from PyPI"
    # The wheel's shared library does not depend on the Python version; ask for one that
    # exists for every supported interpreter so that this works whatever python3 is installed.
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_28_x86_64 \
        "$package==$ORT_VERSION" -d "$tmp/wheel"
    "$python" -m zipfile -e "$tmp"/wheel/*.whl "$tmp/unpacked"

    rm -rf "$dest.new"
    mkdir -p "$dest.new"
    cp "$tmp"/unpacked/onnxruntime/capi/lib*.so* "$dest.new/"
    # The sums the wheel itself records (RECORD: path,sha256=<urlsafe base64>,size) for the
    # libraries copied, checked now and kept for every later use.
    "$python" - "$tmp"/unpacked/*.dist-info/RECORD "$dest.new" <<'PY'
import base64, csv, hashlib, os, sys
record, dest = sys.argv[1], sys.argv[2]
sums = {}
for row in csv.reader(open(record)):
    if row[0].startswith("onnxruntime/capi/lib") and row[1].startswith("sha256="):
        digest = base64.urlsafe_b64decode(row[1][7:] + "==").hex()
        sums[os.path.basename(row[0])] = digest
lines = []
for name in sorted(os.listdir(dest)):
    got = hashlib.sha256(open(os.path.join(dest, name), "rb").read()).hexdigest()
    if sums.get(name) != got:
        sys.exit(f"error: {name}: SHA-256 {got} differs from the wheel's RECORD ({sums.get(name)})")
    lines.append(f"{got}  {name}\n")
open(os.path.join(dest, "SHA256SUMS"), "w").writelines(lines)
PY
    lib=$(cd "$dest.new" && ls libonnxruntime.so.* | head -n 1)
    ln -sf "$lib" "$dest.new/libonnxruntime.so"
    echo "$package==$ORT_VERSION" > "$dest.new/VERSION"
    rm -rf "$dest"
    mv "$dest.new" "$dest"
    echo "==> ONNX Runtime $ORT_VERSION installed in $dest/ ($(ls "$dest" | tr '\n' ' '))"
fi
link_into_checkout "$link" "$dest"
