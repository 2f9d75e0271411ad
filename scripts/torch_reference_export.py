#!/usr/bin/env python3
"""PyTorch reference for the exported cross path's latency.

Builds the no_skip cross path of docs/DESIGN.md's model (encoder of one contrast, decoder of the
other; the same modules as scripts/torch_train_step.py) at random initialisation, times it
in PyTorch eager on the CPU, and exports it with `torch.onnx.export` (TorchScript exporter,
opset 17, dynamic batch and size), the export BENCHMARKS.md compares ours against. Run with
the LibTorch environment's Python (scripts/install-libtorch.sh):

    .libtorch/venv/bin/python scripts/torch_reference_export.py --out /tmp/pytorch_c32.onnx
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_step import Decoder, Encoder  # noqa: E402


class CrossPath(nn.Module):
    def __init__(self, c, depth):
        super().__init__()
        self.encoder = Encoder(c, depth)
        self.decoder = Decoder(c, depth)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, help="the ONNX file to write")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = CrossPath(args.channels, args.depth).eval()
    x = torch.rand(1, 1, args.size, args.size)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            args.out,
            input_names=["image"],
            output_names=["denoised"],
            dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "denoised": {0: "n", 2: "h", 3: "w"}},
            opset_version=17,
            dynamo=False,
        )
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": args.threads,
                "eager_median_s": statistics.median(times),
                "eager_min_s": min(times),
                "onnx": args.out,
            }
        )
    )


if __name__ == "__main__":
    main()
