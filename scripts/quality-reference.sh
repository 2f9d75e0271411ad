#!/usr/bin/env bash
# The quality benchmark of QUALITY.md: the guided and single-contrast denoisers, the guided
# network trained on clean targets (the ceiling of the same network and budget), and the
# study's cross path (contrast synthesis) against BM3D and NLM on held-out phantoms, per
# contrast, with the findings' leakage, at several SNR settings with the same models.
#   bash scripts/quality-reference.sh [--setting 20/12]... [--out out/quality]
#                                     [--pairs 16] [--size 256] [--backend flex|libtorch]
# Trains once (or reuses, when a finished run is already in OUT/runs) configs/guided.json
# and configs/single.json as they are (one model per direction for every noise level: their
# phantoms are drawn over PD SNR 8-25 and PDFS SNR 6-20), configs/guided.json with
# trainer.target = "clean", and the dual-domain network of configs/config.json at the same
# size and noise levels; exports each contrast's model; then, for each PD SNR / PDFS SNR
# setting (default 20/12 and 10/10), denoises a held-out set (seed 1000) and scores
# everything with scripts/quality_reference.py. About 3 hours of training on a 2-core CPU
# with flex (2100 steps per denoiser run), half that with --backend libtorch, then about 5
# minutes per setting.
set -euo pipefail
cd "$(dirname "$0")/.."
settings=()
out=out/quality
pairs=16
size=256
backend=flex
usage="usage: $0 [--setting PD_SNR/PDFS_SNR]... [--out DIR] [--pairs N] [--size N] [--backend flex|libtorch]"
while [ $# -gt 0 ]; do
    case "$1" in
        --setting) settings+=("$2"); shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --pairs) pairs="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --backend) backend="$2"; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
[ ${#settings[@]} -gt 0 ] || settings=(20/12 10/10)
for s in "${settings[@]}"; do
    [[ "$s" =~ ^[0-9.]+/[0-9.]+$ ]] || { echo "error: --setting $s is not PD_SNR/PDFS_SNR" >&2; exit 2; }
done

bash scripts/install-ort.sh
bash scripts/quality-env.sh
venv=.venv-quality
# The same packages as the main job's build, so each reuses the other's release binary.
cargo build --release --locked -p crossdenoise -p crossdenoise-host
bin="${CARGO_TARGET_DIR:-target}/release/crossdenoise"
trainer="$bin"
if [ "$backend" = libtorch ]; then
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/tch" scripts/with-libtorch.sh \
        cargo build --release --locked --features tch --bin crossdenoise
    trainer="${CARGO_TARGET_DIR:-target}/tch/release/crossdenoise"
fi

runs="$out/runs"
set_common=(--set "data.image_size=$size" --set "trainer.backend=\"$backend\"")
train() { # name config extra-args...
    local name="$1" config="$2"
    shift 2
    if grep -q '"interrupted": false' "$runs/$name/summary.json" 2>/dev/null; then
        echo "==> $name: reusing the finished run in $runs/$name"
        return
    fi
    echo "==> training $name ($config)"
    /usr/bin/time -f "    $name: %e s wall, %M KB peak" \
        "$trainer" train "$config" --out "$runs" --force --set "name=\"$name\"" "${set_common[@]}" "$@"
}
train guided configs/guided.json
train single configs/single.json
train ceiling configs/guided.json --set 'trainer.target="clean"'
# The study's cross path at this size: its recommended config, with one more level for the
# larger images and as many steps as its 64 x 64 training takes, over the same noise levels.
train cross configs/config.json --set model.depth=3 --set data.train_pairs=64 \
    --set data.val_pairs=4 --set trainer.epochs=6 \
    --set 'data.snr_range_a=[8, 25]' --set 'data.snr_range_b=[6, 20]'

models="$out/models"
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
    export_model "$runs/ceiling" "$models/${name}_ceiling.onnx" --to "$c"
    export_model "$runs/cross" "$models/${name}_cross.onnx" --from "$other" --to "$c"
done

for setting in "${settings[@]}"; do
snr="${setting%/*}"
snr_pdfs="${setting#*/}"
tag="snr${snr}_${snr_pdfs}"
echo "==> PD SNR $snr / PDFS SNR $snr_pdfs"
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
    "$bin" denoise --model "$models/${name}_ceiling.onnx" --guide "$set_dir/$partner" \
        --out "$den/ceiling" "$set_dir/$name"
    # The cross path makes a $name image from the $partner acquisition.
    "$bin" denoise --model "$models/${name}_cross.onnx" --out "$den/cross_$name" \
        "$set_dir/$partner"
done

echo "==> scoring (BM3D and NLM run here, about 2 s a slice)"
"$venv/bin/python" scripts/quality_reference.py "$set_dir" --out "$out/$tag" \
    --title "PD SNR $snr / PDFS SNR $snr_pdfs, $size x $size" \
    --method "guided=pd:$den/guided/pd,pdfs:$den/guided/pdfs" \
    --method "single-contrast=pd:$den/single/pd,pdfs:$den/single/pdfs" \
    --method "guided, clean targets (ceiling)=pd:$den/ceiling/pd,pdfs:$den/ceiling/pdfs" \
    --method "cross path (contrast synthesis)=pd:$den/cross_pd/pdfs@pdfs,pdfs:$den/cross_pdfs/pd@pd"
echo "tables: $out/$tag/quality.md; pictures: $out/$tag/pd.png, $out/$tag/pdfs.png"
done
