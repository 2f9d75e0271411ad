#!/usr/bin/env bash
# Installs the ONNX Runtime shared library into .ort/ (project-local), taken out of the PyPI
# wheel so nothing is fetched from anywhere but the package registry:
#   bash scripts/install-ort.sh          CPU build   (onnxruntime)      -> .ort/cpu/
#   bash scripts/install-ort.sh --gpu    CUDA + TensorRT providers (onnxruntime-gpu) -> .ort/gpu/
# The runtime looks at $ORT_DYLIB_PATH first, then .ort/gpu/, then .ort/cpu/. The GPU build
# also needs the CUDA, cuDNN and TensorRT libraries of the machine it runs on.
# The version is pinned to one that `ort` 2.0.0-rc.15 (ONNX Runtime API 24+) supports.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION="1.31.1"
package="onnxruntime"
dest=".ort/cpu"
case "${1:-}" in
    "") ;;
    --gpu) package="onnxruntime-gpu"; dest=".ort/gpu" ;;
    *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
esac

if [ -f "$dest/VERSION" ] && [ "$(cat "$dest/VERSION")" = "$package==$ORT_VERSION" ] \
    && [ -e "$dest/libonnxruntime.so" ]; then
    exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; it is needed to fetch the $package wheel from PyPI" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "==> fetching $package==$ORT_VERSION from PyPI"
# The wheel's shared library does not depend on the Python version; ask for one that exists
# for every supported interpreter so that this works whatever python3 is installed.
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 \
    "$package==$ORT_VERSION" -d "$tmp/wheel"
"$python" -m zipfile -e "$tmp"/wheel/*.whl "$tmp/unpacked"

rm -rf "$dest.new"
mkdir -p "$dest.new"
cp "$tmp"/unpacked/onnxruntime/capi/lib*.so* "$dest.new/"
lib=$(cd "$dest.new" && ls libonnxruntime.so.* | head -n 1)
ln -sf "$lib" "$dest.new/libonnxruntime.so"
echo "$package==$ORT_VERSION" > "$dest.new/VERSION"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "==> ONNX Runtime $ORT_VERSION installed in $dest/ ($(ls "$dest" | tr '\n' ' '))"
