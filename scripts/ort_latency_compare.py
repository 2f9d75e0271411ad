#!/usr/bin/env python3
"""Times ONNX models of the cross path side by side in ONNX Runtime's CPU provider, in one
process and interleaved (so a noisy neighbour hits them alike), next to the machine's sgemm
peak measured in the same run; prints node counts before and after ORT's optimisation and
where the time goes per op type (ORT's profiler). BENCHMARKS.md's latency section uses it
to compare our export with PyTorch's (scripts/latency-reference.sh runs the whole thing).

    .venv/bin/python scripts/ort_latency_compare.py ours.onnx pytorch.onnx --size 320
"""

import argparse
import collections
import json
import os
import statistics
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort


def conv_gflop(path, size):
    """FLOPs of the Conv / ConvTranspose nodes at a 1 x 1 x size x size input (2 per MAC)."""
    m = onnx.load(path)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value = 1
    dims[2].dim_value = size
    dims[3].dim_value = size
    m = onnx.shape_inference.infer_shapes(m)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)
    }
    weights = {t.name: list(t.dims) for t in m.graph.initializer}
    total = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w, out = weights[n.input[1]], shapes[n.output[0]]
            total += 2 * out[1] * out[2] * out[3] * w[1] * w[2] * w[3]
        elif n.op_type == "ConvTranspose":
            w, inp = weights[n.input[1]], shapes[n.input[0]]
            total += 2 * inp[1] * inp[2] * inp[3] * w[1] * w[2] * w[3]
    return total / 1e9


def session(path, threads, profile=False, optimized=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if optimized:
        so.optimized_model_filepath = optimized
    so.enable_profiling = profile
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def sgemm_peak(n=2048, runs=10):
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(runs))
    return 2 * n**3 / best / 1e9


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="+")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()

    x = np.random.rand(1, 1, args.size, args.size).astype(np.float32)
    tmp = tempfile.mkdtemp()
    sessions, report = [], {}
    for i, path in enumerate(args.models):
        opt = os.path.join(tmp, f"opt{i}.onnx")
        s = session(path, args.threads, optimized=opt)
        sessions.append((path, s, s.get_inputs()[0].name))
        count = lambda m: dict(collections.Counter(n.op_type for n in m.graph.node))  # noqa: E731
        report[path] = {
            "nodes": len(onnx.load(path).graph.node),
            "ops": count(onnx.load(path)),
            "optimized_nodes": len(onnx.load(opt).graph.node),
            "optimized_ops": count(onnx.load(opt)),
            "gflop": conv_gflop(path, args.size),
            "times": [],
        }
        for _ in range(3):
            s.run(None, {sessions[-1][2]: x})
    peaks = [sgemm_peak()]
    for r in range(args.rounds):
        for path, s, name in sessions:
            report[path]["times"].append(_timed(lambda: s.run(None, {name: x})))
        if r % 5 == 4:
            peaks.append(sgemm_peak(runs=3))
    peak = max(peaks)

    # Where the time goes, per op type (one profiled session per model).
    for path, _, name in sessions:
        s = session(path, args.threads, profile=True)
        for _ in range(5):
            s.run(None, {name: x})
        trace = s.end_profiling()
        events = json.load(open(trace))
        os.remove(trace)
        per_op = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per_op[e["args"]["op_name"]] += e["dur"]
        total = sum(per_op.values())
        report[path]["profile_share"] = {k: round(v / total, 3) for k, v in per_op.most_common()}

    print(f"ONNX Runtime {ort.__version__}, {args.threads} intra-op threads, "
          f"1 x 1 x {args.size} x {args.size}; numpy sgemm peak {peak:.0f} GFLOP/s "
          f"(best of the run, {len(peaks)} measurements)")
    print()
    print("| model | nodes (after ORT optimisation) | median | best | GFLOP/s | share of sgemm peak |")
    print("|---|---|---|---|---|---|")
    for path, r in report.items():
        med, best = statistics.median(r["times"]), min(r["times"])
        rate = r["gflop"] / med
        print(f"| {os.path.basename(path)} | {r['nodes']} ({r['optimized_nodes']}) | "
              f"{med * 1e3:.1f} ms | {best * 1e3:.1f} ms | {rate:.0f} | {rate / peak:.0%} |")
    print()
    for path, r in report.items():
        print(f"{os.path.basename(path)}: {r['gflop']:.2f} GFLOP; ops {r['ops']}; "
              f"after optimisation {r['optimized_ops']}")
        print("  time per op type: " + ", ".join(
            f"{k} {v:.1%}" for k, v in r["profile_share"].items()))


if __name__ == "__main__":
    main()
