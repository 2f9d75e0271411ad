#!/usr/bin/env python3
"""Projects the gradient exchange of data-parallel training onto cluster networks.

Reads `crossdenoise bench gradient-exchange --json` lines (one per network size) on stdin
and prints, per network size, link speed and process count, the time of a ring all-reduce
of the gradients (what MPI and NCCL use for large buffers: each process sends and receives
2 (P - 1) / P of the buffer, in 2 (P - 1) messages) and what fraction of a training step it
would add when not overlapped with the backward pass:

    t = 2 (P - 1) / P * bytes / bandwidth + 2 (P - 1) * latency

Usage: ... | gradient_exchange_projection.py --step-s NAME=SECONDS ... [--latency-us 10]
"""
import argparse
import json
import sys

LINKS_GBIT = (10, 25, 100)
PROCESSES = (2, 4, 8, 16, 32, 64)


def ring_seconds(nbytes, processes, gbit, latency_s):
    hops = 2 * (processes - 1)
    return hops / processes * nbytes * 8 / (gbit * 1e9) + hops * latency_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--step-s", action="append", default=[],
                    help="NAME=SECONDS: a step time to compare with, per network (C16=0.03)")
    ap.add_argument("--latency-us", type=float, default=10.0,
                    help="per-message latency (10 us: TCP on Ethernet; about 2 us on InfiniBand)")
    args = ap.parse_args()
    steps = dict(s.split("=", 1) for s in args.step_s)
    latency = args.latency_us * 1e-6
    runs = [json.loads(line) for line in sys.stdin if line.strip().startswith("{")]
    for r in runs:
        name = f"C{r['base_channels']}"
        mb = r["bytes"] / 1e6
        print(f"\n{r['model']} {name} d{r['depth']}: {r['parameters']} values, {mb:.2f} MB "
              f"a step; measured here on {r['processes']} processes: exchange "
              f"{r['median_s'] * 1e3:.2f} ms, of which the sum {r['transport_median_s'] * 1e3:.2f} ms\n")
        step_s = float(steps[name]) if name in steps else None
        head = "| processes | " + " | ".join(f"{g} Gb/s" for g in LINKS_GBIT) + " |"
        print(head)
        print("|---" * (len(LINKS_GBIT) + 1) + "|")
        for p in PROCESSES:
            cells = []
            for g in LINKS_GBIT:
                t = ring_seconds(r["bytes"], p, g, latency)
                cell = f"{t * 1e3:.2f} ms"
                if step_s:
                    cell += f" ({100 * t / (step_s + t):.0f}%)"
                cells.append(cell)
            print(f"| {p} | " + " | ".join(cells) + " |")
        if step_s:
            print(f"\n(%: the exchange's share of a step of {step_s * 1e3:.0f} ms of compute plus "
                  f"the exchange, latency {args.latency_us:g} us per message)")


if __name__ == "__main__":
    main()
