#!/usr/bin/env bash
# The main job on the embedded synthetic knee phantoms: a phantom data set with its preview,
# then a training run of the recommended config with its sample grids and curves. (Export
# and denoising join this job as they land.) Everything goes under out/ (or $CROSSDENOISE_OUT).
# EPOCHS=N shortens or lengthens the training (default: a 6-epoch look at the recommended
# config; the full config trains 20).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found. Install Rust with rustup (https://rustup.rs), then re-run $0" >&2
    exit 1
fi

out="${CROSSDENOISE_OUT:-out}"
epochs="${EPOCHS:-6}"
echo "==> building crossdenoise (release)"
cargo build --release --locked --bin crossdenoise
bin=target/release/crossdenoise

echo "==> synthetic knee phantoms"
"$bin" phantoms --out "$out/phantoms" --pairs 64 --size 128 --seed 0 --force

echo "==> training configs/config.json for $epochs epochs on the CPU"
"$bin" train configs/config.json --epochs "$epochs" --out "$out/runs" --force

run="$out/runs/config"
last=$(ls "$run/samples" | sort | tail -n 1)
echo
echo "done. Look at:"
echo "  $out/phantoms/preview.png   noisy and clean PD / PDFS phantom slices"
echo "  $run/samples/$last   noisy input | cross-contrast output | target | clean"
echo "  $run/curves.png   losses and validation PSNR"
