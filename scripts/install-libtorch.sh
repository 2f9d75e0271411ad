#!/usr/bin/env bash
# Installs LibTorch for the `tch` training backends (libtorch, libtorch-cuda) into the
# per-user cache (scripts/cache-dir.sh) and links it into the checkout as .libtorch: a Python
# virtual environment holding the PyPI wheel torch==2.9.0, the version Burn's tch backend is
# written for. The Linux wheel carries
# CUDA 12 (its NVIDIA libraries come as PyPI packages too), so the same install trains on
# the CPU and on an NVIDIA GPU; nothing is fetched from anywhere but the package registry.
# About 6 GB installed (never much more on disk meanwhile), 1-2 minutes on a fast link.
#   .libtorch/torch -> the wheel's torch/ folder (include/ and lib/), what LIBTORCH points at
# A cached install is used only when it holds that version and its libraries still match the
# SHA-256 sums taken when it was installed; otherwise it is installed again. Prints nothing
# when the cache is good (scripts/with-libtorch.sh calls it before every command).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cache-dir.sh

TORCH_VERSION="2.9.0"
dest="$cache_dir/libtorch-$TORCH_VERSION"

installed_version() {
    sed -n "s/^__version__ = '\([^'+]*\).*/\1/p" "$dest/torch/version.py" 2>/dev/null || true
}

verified() {
    [ "$(installed_version)" = "$TORCH_VERSION" ] && [ -e "$dest/torch/lib/libtorch.so" ] \
        && [ -f "$dest/SHA256SUMS" ] \
        && (cd "$dest" && sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1)
}

# One install at a time (two checkouts may start the LibTorch tests together).
exec 9>"$dest.lock"
flock 9
if verified; then
    link_into_checkout .libtorch "$dest"
    exit 0
fi
if [ -e "$dest" ]; then
    echo "==> $dest holds PyTorch '$(installed_version)' or does not verify: installing again"
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
# Relative, so that the entry can move. (torch warns that numpy is absent: it is not needed.)
site=$(cd "$dest" && venv/bin/python -c \
    'import torch, os; print(os.path.relpath(os.path.dirname(torch.__file__)))' 2>/dev/null)
ln -sfn "$site" "$dest/torch"
# The libraries the builds link and the binaries load: summed now, checked at every use.
(cd "$dest" && find -L torch/lib -name '*.so*' -type f -print0 | sort -z \
    | xargs -0 sha256sum > SHA256SUMS)
link_into_checkout .libtorch "$dest"
echo "==> LibTorch $(installed_version) in $dest/torch ($(du -sh "$dest" | cut -f1))"
