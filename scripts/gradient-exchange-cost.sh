#!/usr/bin/env bash
# The cost of data-parallel training's gradient exchange (BENCHMARKS.md): builds
# crossdenoise with the `mpi` feature, times the exchange of the guided network's
# gradients (C16 d3, configs/guided.json, and C32 d3, four times the parameters) between 2
# processes on this machine, over shared memory and over TCP on loopback, then projects it
# onto 10 / 25 / 100 Gb/s networks and 2 to 64 processes. Step times to compare with are
# arguments of the projection (defaults: GPU steps of 30 ms, the order PyTorch CUDA takes
# for these networks on an H200, BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-mpi.sh
cargo build --release --locked --features mpi --bin crossdenoise
bin="${CARGO_TARGET_DIR:-target}/release/crossdenoise"
root=()
[ "$(id -u)" -ne 0 ] || root=(--allow-run-as-root)
out=$(mktemp)
for transport in "vader" "tcp"; do
    for c in 16 32; do
        echo "==> C$c over $transport" >&2
        mca=(--mca btl "self,$transport")
        [ "$transport" = tcp ] && mca+=(--mca btl_tcp_if_include lo)
        mpirun "${root[@]}" "${mca[@]}" -np 2 "$bin" bench gradient-exchange \
            --model guided --channels "$c" --depth 3 --steps 30 --json | grep '^{' \
            | tee -a "$out" >&2
    done
done
# The projection from the shared-memory measurements (the sizes are the same for both).
head -2 "$out" | python3 scripts/gradient_exchange_projection.py \
    --step-s "C16=${STEP_C16:-0.03}" --step-s "C32=${STEP_C32:-0.03}" "$@"
rm -f "$out"
