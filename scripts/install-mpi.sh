#!/usr/bin/env bash
# Open MPI (its runtime, `mpirun`, and headers) and libclang, which the `mpi` feature's
# bindings are generated with: what data-parallel training (docs/training.md, "Training on a
# cluster") and its tests need. From Debian / Ubuntu; elsewhere install Open MPI or MPICH
# and libclang with the system's package manager.
set -euo pipefail
if command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1 \
    && ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
    exit 0
fi
bash "$(dirname "$0")/apt-install.sh" openmpi-bin libopenmpi-dev libclang-dev
