#!/usr/bin/env bash
# The main job on the embedded synthetic knee phantoms: train -> export -> denoise -> serve.
#   1. the guided denoisers (PD guided by PDFS, PDFS guided by PD) trained self-supervised
#      on noisy phantom pairs (sample grids, curves, validation against clean);
#   2. each exported as a two-input ONNX model (image, guide), parity-checked against Burn;
#      the study's cross path too, as a contrast-synthesis reference;
#   3. a held-out phantom set (a seed the training never saw), each contrast denoised through
#      ONNX Runtime with the other as its guide, with input | denoised | difference pictures;
#   4. both series streamed over MRD to the console-side daemon, started and stopped here;
#   5. BM3D and NLM on the same slices (the classical denoisers a user would otherwise pick);
#   6. out/report.html: the headline, the slices, every method per contrast with the
#      findings' leakage, daemon = runtime, latency, training.
# Everything goes under out/ (or $CROSSDENOISE_OUT). The guided denoisers train on LibTorch
# (installed from PyPI into the per-user cache, scripts/install-libtorch.sh, 6 GB once), in
# bf16 where the CPU has it (the config's `trainer.precision = "auto"`), 4 epochs of 150
# steps at the config's learning rate and Adam settings (5e-3, second moment 0.99): about
# 7.5 minutes of training on a 2-core CPU, under 9 for the job after the build.
# BACKEND=flex trains on the default build instead (no LibTorch; its step is about twice
# LibTorch's bf16 one, so 4 epochs of 80 steps in the same time, and a weaker model).
# EPOCHS=N trains N epochs.
# configs/guided.json trains the full models.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found. Install Rust with rustup (https://rustup.rs), then re-run $0" >&2
    exit 1
fi

out="${CROSSDENOISE_OUT:-out}"
epochs="${EPOCHS:-4}"
backend="${BACKEND:-libtorch}"
build=(cargo build --release --locked -p crossdenoise -p crossdenoise-host)
case "$backend" in
    libtorch)
        build=(scripts/with-libtorch.sh "${build[@]}" --features crossdenoise/tch)
        training=(--backend libtorch --set trainer.steps_per_epoch=150)
        ;;
    flex) training=(--backend flex --set trainer.steps_per_epoch=80) ;;
    *)
        echo "error: BACKEND=$backend: the main job trains on libtorch (the default) or flex" >&2
        exit 2
        ;;
esac
echo "==> building crossdenoise (release, training on $backend)"
"${build[@]}"
bin="${CARGO_TARGET_DIR:-target}/release/crossdenoise"
host="${CARGO_TARGET_DIR:-target}/release/crossdenoise-host"

echo "==> ONNX Runtime (CPU build from the PyPI wheel) and the classical denoisers' Python"
bash scripts/install-ort.sh
bash scripts/quality-env.sh

# 128 x 128 phantoms. The guided denoisers train over their config's SNR range (PD 8-25,
# PDFS 6-20: one model per direction for every noise level, which overrides the fixed SNRs
# below); the cross path at PD SNR 20 / PDFS SNR 12, as the held-out set below.
phantom_settings=(--set data.image_size=128 --set data.snr_a=20 --set data.snr_b=12)
echo "==> training the guided denoisers (configs/guided.json, $epochs epochs on $backend)"
"$bin" train configs/guided.json --out "$out/runs" --force "${phantom_settings[@]}" \
    --set data.train_pairs=48 --set data.val_pairs=4 --set "trainer.epochs=$epochs" \
    "${training[@]}"
run="$out/runs/guided"

echo "==> the study's cross path, for reference (contrast synthesis, configs/config.json)"
"$bin" train configs/config.json --out "$out/runs" --force "${phantom_settings[@]}" \
    --set model.depth=3 --set data.train_pairs=32 --set data.val_pairs=4 --epochs 3 \
    > "$out/cross-training.log"
tail -n 1 "$out/cross-training.log"

echo "==> exporting each contrast's denoiser (two inputs: image, guide)"
export_model() { # run out extra-args... (the first line of what export says; all in OUT.log)
    local run="$1" model="$2"
    shift 2
    "$bin" export "$run" --out "$model" "$@" > "$model.log"
    head -n 1 "$model.log"
    grep '^parity' "$model.log"
}
export_model "$run" "$out/pd.onnx" --to a --triton-repo "$out/triton"
export_model "$run" "$out/pdfs.onnx" --to b --triton-repo "$out/triton"
export_model "$out/runs/config" "$out/synthesis_pd.onnx" --from b --to a
export_model "$out/runs/config" "$out/synthesis_pdfs.onnx" --from a --to b

echo "==> held-out synthetic knee phantoms (128 x 128, PD SNR 20 / PDFS SNR 12, seed 1000)"
"$bin" phantoms --out "$out/phantoms" --pairs 8 --size 128 --snr 20 --snr-pdfs 12 \
    --seed 1000 --force

echo "==> denoising the held-out slices through ONNX Runtime, each guided by its partner"
rm -rf "$out/denoised" "$out/orientations" "$out/synthesized"
"$bin" denoise --model "$out/pd.onnx" --guide "$out/phantoms/pdfs" --out "$out/denoised" \
    --preview "$out/phantoms/pd"
"$bin" denoise --model "$out/pdfs.onnx" --guide "$out/phantoms/pd" --out "$out/denoised" \
    --preview "$out/phantoms/pdfs"
# The same models averaged over the eight orientations (eight times the inference), a row of
# the reference table only: the headline is one pass, as the daemon and the DICOM node serve.
"$bin" denoise --model "$out/pd.onnx" --guide "$out/phantoms/pdfs" --average-orientations \
    --out "$out/orientations" "$out/phantoms/pd" 2> /dev/null
"$bin" denoise --model "$out/pdfs.onnx" --guide "$out/phantoms/pd" --average-orientations \
    --out "$out/orientations" "$out/phantoms/pdfs" 2> /dev/null
# The cross path's images, labelled as what they are, for the reference table only.
"$bin" denoise --model "$out/synthesis_pd.onnx" --out "$out/synthesized/pd" \
    "$out/phantoms/pdfs" 2> /dev/null
"$bin" denoise --model "$out/synthesis_pdfs.onnx" --out "$out/synthesized/pdfs" \
    "$out/phantoms/pd" 2> /dev/null

echo "==> the console-side daemon: both models served over MRD, the two series sent to it"
rm -rf "$out/returned"
cat > "$out/host.toml" <<TOML
# Written by scripts/main-job.sh: PD images (contrast 0) and PDFS images (contrast 1), each
# denoised guided by the other contrast of its slice.
listen = "127.0.0.1:0"
[profiles.crossdenoise]
model = "pd.onnx"
[[profiles.crossdenoise.rules]]
contrast = 1
model = "pdfs.onnx"
TOML
"$host" serve --config "$out/host.toml" 2> "$out/daemon.log" &
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
"$host" send --connect "$addr" --out "$out/returned" --interleave \
    "$out/phantoms/pd" "$out/phantoms/pdfs"
kill -TERM "$daemon"
wait "$daemon"
trap - EXIT
grep -o 'connections .*' "$out/daemon.log" | tail -n 1

echo "==> BM3D and NLM on the same slices, and every method's leakage"
.venv-quality/bin/python scripts/quality_reference.py "$out/phantoms" --out "$out/reference" \
    --title "main job: 128 x 128 phantoms, PD SNR 20 / PDFS SNR 12" \
    --method "guided=pd:$out/denoised/pd,pdfs:$out/denoised/pdfs" \
    --method "guided, eight orientations=pd:$out/orientations/pd,pdfs:$out/orientations/pdfs" \
    --method "cross path (contrast synthesis)=pd:$out/synthesized/pd/pdfs@pdfs,pdfs:$out/synthesized/pdfs/pd@pd" \
    > /dev/null

echo "==> the report"
"$bin" report --run "$run" --pd-model "$out/pd.onnx" --pdfs-model "$out/pdfs.onnx" \
    --phantoms "$out/phantoms" --denoised "$out/denoised" --returned "$out/returned" \
    --reference "$out/reference/quality.json" --out "$out/report.html"

last=$(ls "$run/samples" | sort | tail -n 1)
echo
echo "done. Open $out/report.html (headline, slices, BM3D / NLM, leakage, daemon, training), or:"
echo "  $out/heldout.png   held-out slices: acquired | denoised | clean, PD and PDFS"
echo "  $run/samples/$last   validation: acquired | denoised | clean, both contrasts"
echo "  $run/curves.png   losses and validation PSNR against the acquired images'"
echo "  $out/denoised/preview/   each held-out slice: input | denoised | difference"
echo "  $out/reference/quality.md   every method per contrast, with leakage"
echo "  $out/pd.onnx, $out/pdfs.onnx   the exported models ($out/triton/ serves them on Triton)"
echo "  $out/returned/   what the daemon sent back over MRD (*.denoised.npy), $out/daemon.log"
