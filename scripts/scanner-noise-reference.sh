#!/usr/bin/env bash
# The "Scanner noise" figures of QUALITY.md, on held-out multi-coil phantoms (seed 1000
# unless --seed says another, 8 coils with neighbours correlated by 0.15,
# root-sum-of-squares):
#  1. the noise map: each slice's noise sd estimated by `crossdenoise noise-map` (each set
#     one series, each contrast beside the other, as `denoise --noise map` serves) against the
#     true map, in tissue (relative error: mean, spread, 95th percentile), at acceleration 2
#     and 3 and two noise levels, with a picture true | estimated;
#  2. denoising at acceleration 2 and each --setting: the exported models in MODELS
#     (pd.onnx and pdfs.onnx) served as a single-coil model is (one sigma per slice), or,
#     with --noise-map, as a model trained on 8-coil phantoms (data.coils) is
#     (`--noise map --coils 8`), against BM3D given the true noise map and the noncentral
#     chi correction, and against BM3D given the maps the product estimates for itself
#     (scripts/quality_reference.py --estimated-maps).
#   bash scripts/scanner-noise-reference.sh [--models DIR [--noise-map]] [--setting 20/12]...
#                                           [--out DIR] [--pairs 8] [--size 256] [--seed 1000]
# Without --models only part 1 runs (about a minute); part 2 takes about 4 minutes per
# setting on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/scanner-noise
pairs=8
size=256
seed=1000
models=
serve=()
settings=()
usage="usage: $0 [--models DIR [--noise-map]] [--setting PD_SNR/PDFS_SNR]... [--out DIR] [--pairs N] [--size N] [--seed N]"
while [ $# -gt 0 ]; do
    case "$1" in
        --models) models="$2"; shift 2 ;;
        --noise-map) serve=(--noise map --coils 8); shift ;;
        --setting) settings+=("$2"); shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --pairs) pairs="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
[ ${#settings[@]} -gt 0 ] || settings=(20/12 10/10)
bash scripts/quality-env.sh
cargo build --release --locked --quiet --bin crossdenoise
bin="${CARGO_TARGET_DIR:-target}/release/crossdenoise"

# What a set's phantoms.json states of its noise: the phase encoding (the maps' tiles are
# narrowed across it) and the acceleration (the maps are read between its fold lines where
# they jump there).
stated() { # SET KEY
    .venv-quality/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["noise"][sys.argv[2]])' "$1/phantoms.json" "$2"
}

# Each contrast's series maps, read beside the other, as `denoise --noise map` serves them.
estimate_maps() { # NAME
    local pe r c partner
    pe=$(stated "$out/$1" phase_encoding)
    r=$(stated "$out/$1" acceleration)
    for c in pd pdfs; do
        partner=$([ "$c" = pd ] && echo pdfs || echo pd)
        "$bin" noise-map --coils 8 --series --guide "$out/$1/$partner" --phase-encoding "$pe" \
            --acceleration "$r" --out "$out/$1/estimated/$c" "$out/$1/$c"/*.npy >/dev/null
    done
}

phantoms() { # NAME R PD_SNR PDFS_SNR
    "$bin" phantoms --out "$out/$1" --pairs "$pairs" --size "$size" --seed "$seed" --force \
        --coils 8 --coil-correlation 0.15 --acceleration "$2" --snr "$3" --snr-pdfs "$4" >/dev/null
}

echo "==> noise maps"
sets=()
for r in 2 3; do
    for snr in 20/12 10/10; do
        name="R${r}_snr${snr/\//-}"
        phantoms "$name" "$r" "${snr%/*}" "${snr#*/}"
        estimate_maps "$name"
        sets+=("$out/$name")
    done
done
.venv-quality/bin/python scripts/noise_map_reference.py "${sets[@]}" --picture "$out/noise-map.png" \
    | tee "$out/noise-map.md"

[ -n "$models" ] || exit 0
for setting in "${settings[@]}"; do
    snr=${setting%/*}; snr_pdfs=${setting#*/}
    name="R2_snr${snr}-${snr_pdfs}"
    echo "==> denoising $name"
    phantoms "$name" 2 "$snr" "$snr_pdfs"
    rm -rf "$out/$name/denoised"
    # The maps a model served with --noise map estimates, for BM3D given the same.
    estimated=()
    pe=()
    if [ ${#serve[@]} -gt 0 ]; then
        estimate_maps "$name"
        estimated=(--estimated-maps "$out/$name/estimated")
        pe=(--phase-encoding "$(stated "$out/$name" phase_encoding)"
            --acceleration "$(stated "$out/$name" acceleration)")
    fi
    for c in pd pdfs; do
        partner=$([ $c = pd ] && echo pdfs || echo pd)
        "$bin" denoise "${serve[@]}" "${pe[@]}" --model "$models/$c.onnx" --guide "$out/$name/$partner" \
            --out "$out/$name/denoised" "$out/$name/$c" >/dev/null
    done
    .venv-quality/bin/python scripts/quality_reference.py "$out/$name" --out "$out/$name/quality" \
        --title "8 coils, acceleration 2, PD SNR $snr / PDFS SNR $snr_pdfs, models as given" \
        --method "product=pd:$out/$name/denoised/pd,pdfs:$out/$name/denoised/pdfs" \
        "${estimated[@]}" \
        > "$out/$name/quality.log"
    cat "$out/$name/quality/quality.md"
done
