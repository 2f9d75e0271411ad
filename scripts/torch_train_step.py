#!/usr/bin/env python3
"""PyTorch reference for `crossdenoise bench train-step`.

`--model dual_domain` (the default): the same dual-domain model (docs/DESIGN.md "The model"), the same no_skip step (2 encoders, 4
decoder passes, content + recon + cross + edge L1 losses, backward, Adam) on random data, timed
the same way (warm-up, then the median of N steps, each ending with the loss values read back
so an asynchronous GPU is waited for). It exists so BENCHMARKS.md can put Burn's step time next
to PyTorch's on the same machine and card.

`--model guided`: the product's guided denoisers, both directions per step
(`torch_guided.py` mirrors train/src/model/{blind_spot,guided}.rs), the squared error over
the noise variance, backward, Adam.

    python3 scripts/torch_train_step.py --device cuda --channels 32 --size 128 --batch 4
    python3 scripts/torch_train_step.py --device cpu --model guided --channels 16 --depth 3 --size 64 --batch 8
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.InstanceNorm2d(cout, affine=False, eps=1e-5),
        nn.LeakyReLU(0.2),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.InstanceNorm2d(cout, affine=False, eps=1e-5),
        nn.LeakyReLU(0.2),
    )


class Encoder(nn.Module):
    def __init__(self, c, depth):
        super().__init__()
        self.stem = block(1, c)
        self.levels = nn.ModuleList(block(c << (l - 1), c << l) for l in range(1, depth + 1))

    def forward(self, x):
        h = self.stem(x)
        for level in self.levels:
            h = level(F.avg_pool2d(h, 2))
        return h


class Decoder(nn.Module):
    def __init__(self, c, depth):
        super().__init__()
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(c << (l + 1), c << l, 2, stride=2) for l in reversed(range(depth))
        )
        self.norms = nn.ModuleList(
            nn.InstanceNorm2d(c << l, affine=False) for l in reversed(range(depth))
        )
        self.blocks = nn.ModuleList(block(c << l, c << l) for l in reversed(range(depth)))
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, z):
        h = z
        for up, norm, blk in zip(self.ups, self.norms, self.blocks):
            h = blk(F.leaky_relu(norm(up(h)), 0.2))
        return self.head(h)


def sobel(x):
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    k = torch.stack([kx, kx.t()]).unsqueeze(1)
    return F.conv2d(x, k, padding=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["dual_domain", "guided"], default="dual_domain")
    p.add_argument("--device", default="cuda")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-edge", action="store_true")
    # PyTorch's own mixed precision (torch.autocast in bf16 over the networks, the losses in
    # f32), next to `crossdenoise bench train-step --precision bf16`.
    p.add_argument("--amp", choices=["bf16"], default=None)
    args = p.parse_args()

    torch.manual_seed(0)
    dev = torch.device(args.device)
    if args.model == "guided":
        from torch_guided import GuidedDenoiser

        to_a = GuidedDenoiser(args.channels, args.depth)
        to_b = GuidedDenoiser(args.channels, args.depth)
        modules = nn.ModuleList([to_a, to_b]).to(dev)
    else:
        ea, eb = Encoder(args.channels, args.depth), Encoder(args.channels, args.depth)
        da, db = Decoder(args.channels, args.depth), Decoder(args.channels, args.depth)
        modules = nn.ModuleList([ea, eb, da, db]).to(dev)
    opt = torch.optim.Adam(modules.parameters(), lr=1e-3, eps=1e-8)
    shape = (args.batch, 1, args.size, args.size)
    times = []
    for i in range(args.warmup + args.steps):
        xa, xb = torch.rand(shape, device=dev), torch.rand(shape, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if args.model == "guided":
            var = 0.1 ** 2
            total = ((to_a(xa, xb) - xa) ** 2 / var).mean() + ((to_b(xb, xa) - xb) ** 2 / var).mean()
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            _ = total.item()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
            continue
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            za, zb = ea(xa), eb(xb)
            ra, rb, ca, cb = da(za), db(zb), da(zb), db(za)
        za, zb, ra, rb, ca, cb = (t.float() for t in (za, zb, ra, rb, ca, cb))
        content = (za - zb).abs().mean()
        recon = F.l1_loss(ra, xa) + F.l1_loss(rb, xb)
        cross = F.l1_loss(ca, xa) + F.l1_loss(cb, xb)
        total = content + 0.5 * recon + cross
        if not args.no_edge:
            total = total + 0.05 * (
                F.l1_loss(sobel(ca), sobel(xa)) + F.l1_loss(sobel(cb), sobel(xb))
            )
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        _ = [v.item() for v in (content, recon, cross, total)]
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    out = {
        "model": args.model,
        "backend": f"pytorch-{dev.type}",
        "threads": torch.get_num_threads(),
        "precision": args.amp or "f32",
        "torch": torch.__version__,
        "card": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "base_channels": args.channels,
        "depth": args.depth,
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
    }
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
