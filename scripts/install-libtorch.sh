#!/usr/bin/env bash
# Installs LibTorch for the `tch` training backends (libtorch, libtorch-cuda) into
# .libtorch/ (project-local): a Python virtual environment holding the PyPI wheel
# torch==2.9.0, the version Burn's tch backend is written for. The Linux wheel carries
# CUDA 12 (its NVIDIA libraries come as PyPI packages too), so the same install trains on
# the CPU and on an NVIDIA GPU; nothing is fetched from anywhere but the package registry.
# About 6 GB installed (never much more on disk meanwhile), 1-2 minutes on a fast link.
#   .libtorch/torch -> the wheel's torch/ folder (include/ and lib/), what LIBTORCH points at
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="2.9.0"
dest=".libtorch"

installed_version() {
    sed -n "s/^__version__ = '\([^'+]*\).*/\1/p" "$dest/torch/version.py" 2>/dev/null || true
}

if [ "$(installed_version)" = "$TORCH_VERSION" ] && [ -e "$dest/torch/lib/libtorch.so" ]; then
    exit 0
fi
if [ -e "$dest/torch" ]; then
    echo "==> .libtorch holds PyTorch $(installed_version), not $TORCH_VERSION: reinstalling"
    rm -rf "$dest"
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; it is needed to install torch==$TORCH_VERSION from PyPI" >&2
    exit 1
fi

echo "==> installing torch==$TORCH_VERSION from PyPI into $dest/venv (about 6 GB)"
mkdir -p "$dest"
"$python" -m venv "$dest/venv"
pip=("$dest/venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check)
# pip resolves torch's pinned dependencies first, then installs them one wheel at a time:
# in one `pip install torch` it would hold every downloaded wheel (3 GB of NVIDIA libraries)
# beside the installed files until the end, and CI machines' disks are small. No pip cache
# either, for the same reason. triton is left out: it is torch.compile's kernel compiler,
# which LibTorch driven from C++ never loads. torch goes last, so that an interrupted
# install is not taken for a finished one (the check above looks for torch).
report="$dest/resolved.json"
"${pip[@]}" --dry-run --ignore-installed --report "$report" "torch==$TORCH_VERSION"
wheels=$("$dest/venv/bin/python" - "$report" <<'PY'
import json, sys
names = [(i["metadata"]["name"], i["metadata"]["version"])
         for i in json.load(open(sys.argv[1]))["install"]]
names.sort(key=lambda nv: nv[0].lower() == "torch")
print("\n".join(f"{n}=={v}" for n, v in names if n.lower() != "triton"))
PY
)
n=$(echo "$wheels" | wc -l)
i=0
for wheel in $wheels; do
    i=$((i + 1))
    echo "    [$i/$n] $wheel"
    "${pip[@]}" --no-deps "$wheel"
done
rm -f "$report"
# Relative, so that the checkout can move. (torch warns that numpy is absent: it is not needed.)
site=$("$dest/venv/bin/python" -c \
    'import torch, os; print(os.path.relpath(os.path.dirname(torch.__file__), ".libtorch"))' \
    2>/dev/null)
ln -sfn "$site" "$dest/torch"
echo "==> LibTorch $(installed_version) in $dest/torch ($(du -sh "$dest" | cut -f1))"
