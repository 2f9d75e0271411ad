#!/usr/bin/env bash
# The quality benchmark of QUALITY.md: the guided and single-contrast denoisers and the
# study's cross path (contrast synthesis) against BM3D and NLM on held-out phantoms, per
# contrast, with the findings' leakage.
#   bash scripts/quality-reference.sh [--snr 20] [--snr-pdfs 12] [--out out/quality]
#                                     [--pairs 16] [--size 256]
# Trains (or reuses, when a finished run is already in OUT/runs) configs/guided.json and
# configs/single.json at the given SNRs, and the dual-domain network of configs/config.json
# at the same size, exports each contrast's model, denoises a held-out set (seed 1000) and
# scores everything with scripts/quality_reference.py. About an hour per SNR setting on a
# 2-core CPU, most of it training.
set -euo pipefail
cd "$(dirname "$0")/.."
snr=20
snr_pdfs=12
out=out/quality
pairs=16
size=256
while [ $# -gt 0 ]; do
    case "$1" in
        --snr) snr="$2"; shift 2 ;;
        --snr-pdfs) snr_pdfs="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --pairs) pairs="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        *) echo "usage: $0 [--snr N] [--snr-pdfs N] [--out DIR] [--pairs N] [--size N]" >&2; exit 2 ;;
    esac
done

bash scripts/install-ort.sh
bash scripts/quality-env.sh
venv=.venv-quality
# The same packages as the main job's build, so each reuses the other's release binary.
cargo build --release --locked -p crossdenoise -p crossdenoise-host
bin=target/release/crossdenoise

tag="snr${snr}_${snr_pdfs}"
runs="$out/$tag/runs"
set_snr=(--set "data.snr_a=$snr" --set "data.snr_b=$snr_pdfs" --set "data.image_size=$size")
train() { # name config extra-args...
    local name="$1" config="$2"
    shift 2
    if grep -q '"interrupted": false' "$runs/$name/summary.json" 2>/dev/null; then
        echo "==> $name: reusing the finished run in $runs/$name"
        return
    fi
    echo "==> training $name ($config)"
    /usr/bin/time -f "    $name: %e s wall, %M KB peak" \
        "$bin" train "$config" --out "$runs" --force --set "name=\"$name\"" "${set_snr[@]}" "$@"
}
train guided configs/guided.json
train single configs/single.json
# The study's cross path at this size: its recommended config, with one more level for the
# larger images and as many steps as its 64 x 64 training takes.
train cross configs/config.json --set model.depth=3 --set data.train_pairs=64 \
    --set data.val_pairs=4 --set trainer.epochs=6

models="$out/$tag/models"
mkdir -p "$models"
export_model() { # run out extra-args... (the first line of what export says; all in OUT.log)
    local run="$1" model="$2"
    shift 2
    "$bin" export "$run" --out "$model" "$@" > "$model.log"
    head -n 1 "$model.log"
}
for c in a b; do
    name=$([ "$c" = a ] && echo pd || echo pdfs)
    other=$([ "$c" = a ] && echo b || echo a)
    export_model "$runs/guided" "$models/${name}_guided.onnx" --to "$c"
    export_model "$runs/single" "$models/${name}_single.onnx" --to "$c"
    export_model "$runs/cross" "$models/${name}_cross.onnx" --from "$other" --to "$c"
done

set_dir="$out/$tag/phantoms"
"$bin" phantoms --out "$set_dir" --pairs "$pairs" --size "$size" --snr "$snr" \
    --snr-pdfs "$snr_pdfs" --seed 1000 --force
den="$out/$tag/denoised"
rm -rf "$den"
for name in pd pdfs; do
    partner=$([ "$name" = pd ] && echo pdfs || echo pd)
    "$bin" denoise --model "$models/${name}_guided.onnx" --guide "$set_dir/$partner" \
        --out "$den/guided" "$set_dir/$name"
    "$bin" denoise --model "$models/${name}_single.onnx" --out "$den/single" "$set_dir/$name"
    # The cross path makes a $name image from the $partner acquisition.
    "$bin" denoise --model "$models/${name}_cross.onnx" --out "$den/cross_$name" \
        "$set_dir/$partner"
done

echo "==> scoring (BM3D and NLM run here, about 2 s a slice)"
"$venv/bin/python" scripts/quality_reference.py "$set_dir" --out "$out/$tag" \
    --title "PD SNR $snr / PDFS SNR $snr_pdfs, $size x $size" \
    --method "guided=pd:$den/guided/pd,pdfs:$den/guided/pdfs" \
    --method "single-contrast=pd:$den/single/pd,pdfs:$den/single/pdfs" \
    --method "cross path (contrast synthesis)=pd:$den/cross_pd/pdfs@pdfs,pdfs:$den/cross_pdfs/pd@pd"
echo "tables: $out/$tag/quality.md; pictures: $out/$tag/pd.png, $out/$tag/pdfs.png"
