#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first, so it works on a
# fresh machine with only a Rust toolchain (rustup) and Python 3 (with venv and pip) present.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found. Install Rust with rustup (https://rustup.rs), then re-run $0" >&2
    exit 1
fi

# ONNX Runtime (CPU build, from the PyPI wheel) for the runtime's tests, and the Python
# packages the tests use as independent references (onnx, onnxruntime, pydicom, numpy).
bash scripts/install-ort.sh
bash scripts/python-env.sh
# DCMTK (echoscu, storescu) from Debian: the DICOM node's tests talk to real peers.
bash scripts/install-dcmtk.sh
# Open MPI: data-parallel training is tested under a real `mpirun` (the `mpi` feature).
bash scripts/install-mpi.sh

cargo test --workspace --locked --features crossdenoise/mpi "$@"
