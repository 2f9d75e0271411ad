#!/usr/bin/env bash
# The main job on the embedded synthetic knee phantoms: train -> export -> denoise -> serve.
#   1. a training run of the recommended config (sample grids, curves, validation PSNR/SSIM);
#   2. export of its PDFS -> PD no-skip path as an ONNX model, parity-checked against Burn;
#   3. a held-out phantom set (a seed the training never saw), denoised through ONNX Runtime,
#      with input | denoised | difference pictures;
#   4. the same series streamed over MRD to the console-side daemon, started and stopped here;
#   5. out/report.html: curves, samples, held-out PSNR / SSIM against clean, latency.
# Everything goes under out/ (or $CROSSDENOISE_OUT).
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
cargo build --release --locked -p crossdenoise -p crossdenoise-host
bin=target/release/crossdenoise
host=target/release/crossdenoise-host

echo "==> ONNX Runtime (CPU build from the PyPI wheel)"
bash scripts/install-ort.sh

echo "==> training configs/config.json for $epochs epochs on the CPU"
"$bin" train configs/config.json --epochs "$epochs" --out "$out/runs" --force
run="$out/runs/config"

echo "==> exporting the PDFS -> PD path to ONNX"
"$bin" export "$run" --out "$out/model.onnx" --from b --to a --triton-repo "$out/triton"

echo "==> held-out synthetic knee phantoms (64 x 64, SNR 10, as trained)"
"$bin" phantoms --out "$out/phantoms" --pairs 8 --size 64 --snr 10 --seed 1000 --force

echo "==> denoising the held-out PDFS slices through ONNX Runtime"
rm -rf "$out/denoised"
"$bin" denoise --model "$out/model.onnx" --out "$out/denoised" --preview "$out/phantoms/pdfs"

echo "==> the console-side daemon: serving the model over MRD, the held-out series sent to it"
rm -rf "$out/returned"
"$host" serve --model "$out/model.onnx" --listen 127.0.0.1:0 2> "$out/daemon.log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
addr=""
for _ in $(seq 300); do
    addr=$(sed -n 's/^listening on //p' "$out/daemon.log")
    [ -n "$addr" ] && break
    kill -0 "$daemon" 2>/dev/null || { cat "$out/daemon.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "error: the daemon did not start, see $out/daemon.log" >&2; exit 1; }
"$host" send --connect "$addr" --out "$out/returned" "$out/phantoms/pdfs"
kill -TERM "$daemon"
wait "$daemon"
trap - EXIT
grep -o 'connections .*' "$out/daemon.log" | tail -n 1

echo "==> the report"
"$bin" report --run "$run" --model "$out/model.onnx" --phantoms "$out/phantoms" \
    --denoised "$out/denoised" --returned "$out/returned" --out "$out/report.html"

last=$(ls "$run/samples" | sort | tail -n 1)
echo
echo "done. Open $out/report.html (training, held-out results, daemon, latency), or look at:"
echo "  $run/samples/$last   noisy input | cross-contrast output | target | clean"
echo "  $run/curves.png   losses and validation PSNR"
echo "  $out/denoised/preview/pdfs/   held-out PDFS input | PD-contrast output | difference"
echo "  $out/phantoms/preview.png   the held-out slices, noisy and clean"
echo "  $out/model.onnx   the exported model ($out/triton/ serves it on Triton)"
echo "  $out/returned/pdfs/   what the daemon sent back over MRD (*.denoised.npy), $out/daemon.log"
