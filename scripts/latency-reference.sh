#!/usr/bin/env bash
# Our exported C32 d4 cross path against the same model exported by PyTorch, both in ONNX
# Runtime's CPU provider in one interleaved run, next to PyTorch eager and the machine's
# sgemm peak: the reference figures of BENCHMARKS.md's latency section.
#   bash scripts/latency-reference.sh [--channels 32] [--size 320]
# Needs: the release build, .venv (scripts/python-env.sh) and LibTorch's Python
# (scripts/install-libtorch.sh, for PyTorch itself). Weights are random: they do not
# change speed.
set -euo pipefail
cd "$(dirname "$0")/.."
channels=32
size=320
while [ $# -gt 0 ]; do
    case "$1" in
        --channels) channels="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        *) echo "usage: $0 [--channels N] [--size N]" >&2; exit 2 ;;
    esac
done

bash scripts/install-ort.sh
bash scripts/python-env.sh
bash scripts/install-libtorch.sh
cargo build --release --locked --bin crossdenoise
bin="${CARGO_TARGET_DIR:-target}/release/crossdenoise"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/c$channels.json" <<JSON
{ "extends": "$PWD/configs/config.json", "name": "c$channels",
  "data": { "image_size": 32, "train_pairs": 2, "val_pairs": 1 },
  "model": { "base_channels": $channels, "depth": 4 },
  "trainer": { "epochs": 1, "batch_size": 2 } }
JSON
echo "==> our export (C$channels d4, one tiny training step for a run folder)"
"$bin" train "$work/c$channels.json" --out "$work/runs" > /dev/null
"$bin" export "$work/runs/c$channels" --out "$work/crossdenoise.onnx" \
    | head -1
echo "==> PyTorch eager and torch.onnx.export of the same path"
# PyTorch's exporter needs the onnx package, which the project's .venv has.
site=$(.venv/bin/python -c 'import onnx, os; print(os.path.dirname(os.path.dirname(onnx.__file__)))')
PYTHONPATH="$site" .libtorch/venv/bin/python scripts/torch_reference_export.py \
    --channels "$channels" --size "$size" --out "$work/pytorch.onnx" 2>/dev/null
echo "==> ONNX Runtime, interleaved"
.venv/bin/python scripts/ort_latency_compare.py "$work/crossdenoise.onnx" "$work/pytorch.onnx" \
    --size "$size"
