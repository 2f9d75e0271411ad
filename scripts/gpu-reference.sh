#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md and QUALITY.md, on an NVIDIA machine whose Python has
# PyTorch (its LibTorch serves the `tch` build, its onnxruntime the export's check):
#   bash scripts/gpu-reference.sh BIN OUT [TRAIN_BUDGET_S]
# BIN is a `crossdenoise` built with `--features tch` against that PyTorch's LibTorch
# (LIBTORCH_BYPASS_VERSION_CHECK=1 when it is not the 2.9.0 that tch is written for; see
# BENCHMARKS.md). It writes to OUT:
#   gpu-reference.log    everything below
#   steps.jsonl          the guided training step, C16 d3, batch 8 at 64 x 64 (the
#                        config's crops) and 256 x 256, f32 and bf16: Burn on LibTorch CUDA
#                        and the same network in PyTorch CUDA
#   summary.json         configs/guided.json trained on libtorch-cuda with as many epochs as
#                        TRAIN_BUDGET_S (default 240) holds at the measured step time (at least 12)
#   pd_guided.onnx, pdfs_guided.onnx   that run exported, one model per direction
set -uo pipefail
cd "$(dirname "$0")/.."
bin="$1"
out="$2"
budget_s="${3:-240}"
mkdir -p "$out"
exec > >(tee "$out/gpu-reference.log") 2>&1

# LibTorch's folder, and the NVIDIA libraries the PyTorch wheel depends on beside it.
libs=$(python3 -c 'import glob, os, torch
site = os.path.dirname(os.path.dirname(torch.__file__))
print(":".join([os.path.join(os.path.dirname(torch.__file__), "lib")] + sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib")))))')
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ort=$(python3 -c 'import glob, os, onnxruntime as o; print((sorted(glob.glob(os.path.join(os.path.dirname(o.__file__), "capi", "libonnxruntime.so*"))) or [""])[0])')
[ -n "$ort" ] && export ORT_DYLIB_PATH="$ort"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch, onnxruntime; print("torch", torch.__version__, "onnxruntime", onnxruntime.__version__)'
"$bin" --version || exit 1

steps="$out/steps.jsonl"
: > "$steps"
for size in 64 256; do
    common=(--model guided --channels 16 --depth 3 --size "$size" --batch 8)
    for precision in f32 bf16; do
        timeout 120 "$bin" bench train-step "${common[@]}" --backend libtorch-cuda \
            --precision "$precision" --warmup 5 --steps 20 --json | tee -a "$steps"
    done
    timeout 120 python3 scripts/torch_train_step.py "${common[@]}" --device cuda \
        --warmup 5 --steps 20 | tee -a "$steps"
done

# As many epochs (100 steps each, at least the config's 12) as the budget holds: a step with
# the prior's loss (computed on the host) and each epoch's validation took 2.5x the bench's
# f32 step on the H200 (0.32 s against 0.13 s).
step_s=$(python3 -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("backend", "").startswith("libtorch") and r["size"] == 64 and r["precision"] == "f32":
        print(r["median_s"]); break' "$steps")
epochs=$(python3 -c "import sys; print(max(12, min(200, int($budget_s / (250 * ${step_s:-1})))))")
echo "==> f32 step ${step_s:-?} s: training configs/guided.json for $epochs epochs"
runs=$(mktemp -d)
start=$SECONDS
"$bin" train configs/guided.json --out "$runs" --set 'name="guided_gpu"' \
    --set 'trainer.backend="libtorch-cuda"' --set "trainer.epochs=$epochs"
echo "==> training: $((SECONDS - start)) s wall"
cp "$runs/guided_gpu/summary.json" "$out/" 2>/dev/null
for c in a b; do
    name=$([ "$c" = a ] && echo pd || echo pdfs)
    "$bin" export "$runs/guided_gpu" --out "$out/${name}_guided.onnx" --to "$c" | head -n 3
done
ls -l "$out"
