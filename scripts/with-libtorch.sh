#!/usr/bin/env bash
# Runs a command (a cargo build, test or bench with `--features tch`) with LibTorch
# installed and found: installs it first if needed (scripts/install-libtorch.sh), then points
# torch-sys at it. The binaries built this way carry an rpath to LibTorch's folder in the
# per-user cache and run without LD_LIBRARY_PATH. LIBTORCH is that folder's real path, the
# same from every checkout, so that a build cache shared between checkouts keeps torch-sys.
#   scripts/with-libtorch.sh cargo build --release --features tch
#   scripts/with-libtorch.sh cargo test -p crossdenoise-train --features tch --test backends
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]   (e.g. $0 cargo build --release --features tch)" >&2
    exit 2
fi
bash "$root/scripts/install-libtorch.sh"
export LIBTORCH="$(cd -P "$root/.libtorch/torch" && pwd)"
# The PyPI wheels are built with the C++11 ABI.
export LIBTORCH_CXX11_ABI=1
exec "$@"
