#!/usr/bin/env bash
# The main job on the embedded synthetic knee phantoms. Today it writes a phantom data set
# and its preview picture; the training, export and denoising steps join it as they land.
# Everything it makes goes under out/ (or $CROSSDENOISE_OUT).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found. Install Rust with rustup (https://rustup.rs), then re-run $0" >&2
    exit 1
fi

out="${CROSSDENOISE_OUT:-out}"
echo "==> building crossdenoise (release)"
cargo build --release --locked --bin crossdenoise
bin=target/release/crossdenoise

echo "==> synthetic knee phantoms"
"$bin" phantoms --out "$out/phantoms" --pairs 64 --size 128 --seed 0 --force

echo
echo "done. Look at $out/phantoms/preview.png (noisy and clean PD / PDFS slices)."
