"""Where a denoised set's error lies inside the knee: on the edges or in the flat tissue,
next to BM3D + Rician correction at the true sigma on the same slices.

    python scripts/error_at_edges.py SET DENOISED [--slices N]

SET is a single-coil `crossdenoise phantoms` folder (phantoms.json, clean/), DENOISED
holds `pd/` and `pdfs/` with the served slices of the same names. The regions: the edge
band (tissue pixels within 2 of a clean edge, where the clean image's gradient is above a
tenth of its largest), the flat tissue (the rest of `quality_reference.tissue_mask`) and
the air. Per region: its share of the pixels, each method's PSNR over that region alone
(the clean image's maximum as the range), and how far the error follows the clean image's
local contrast (the slope of the error against clean minus its 5 x 5 mean: -1 is a
flattened edge, 0 no blur) with the rms left after it, in noise sigmas. A region where both
methods sit at the same PSNR with no slope is limited by what neither can tell, not by
blurring.
"""
import argparse
import json
from pathlib import Path

import bm3d
import numpy as np
from scipy.ndimage import binary_dilation, sobel, uniform_filter

from quality_reference import load_dir, rician_amplitude, tissue_mask


def regions(clean):
    tissue = tissue_mask(clean)
    gradient = np.hypot(sobel(clean, 0), sobel(clean, 1))
    edges = binary_dilation(gradient > 0.1 * gradient.max(), iterations=2) & tissue
    return {"edges": edges, "flat tissue": tissue & ~edges, "air": ~tissue}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", type=Path)
    parser.add_argument("denoised", type=Path)
    parser.add_argument("--slices", type=int, default=4, help="the first N slices (0: all)")
    args = parser.parse_args()
    manifest = json.loads((args.set / "phantoms.json").read_text())
    print("| contrast | region | share | method | PSNR (dB) | blur slope | rms after it (sigma) |")
    print("|---|---|---|---|---|---|---|")
    for contrast in ("pd", "pdfs"):
        sigma = manifest[f"sigma_{contrast}"]
        acquired = load_dir(args.set / contrast)
        clean = load_dir(args.set / "clean" / contrast)
        served = load_dir(args.denoised / contrast)
        names = sorted(clean)[: args.slices or None]
        sums = {}
        for name in names:
            x = clean[name].astype(np.float64)
            baseline = rician_amplitude(bm3d.bm3d(acquired[name], sigma_psd=sigma), sigma)
            contrast_here = x - uniform_filter(x, 5)
            for region, mask in regions(x).items():
                for method, out in (("BM3D + Rician correction", baseline), ("served", served[name])):
                    err = (out.astype(np.float64) - x)[mask]
                    d = contrast_here[mask]
                    s = sums.setdefault((region, method), np.zeros(5))
                    s += [mask.sum(), (err**2).sum(), (err * d).sum(), (d * d).sum(), x.max() ** 2 * mask.sum()]
        total = sum(s[0] for (r, m), s in sums.items() if m == "served")
        for (region, method), (n, sq, ed, dd, peak) in sums.items():
            if not n:
                continue
            # The air has no contrast to follow: its error is the floor's, not a blur.
            slope = ed / dd if region != "air" and dd > 0 else 0.0
            rest = max(sq - slope * ed, 0.0)
            shown = "-" if region == "air" else f"{slope:+.3f}"
            print(
                f"| {contrast.upper()} | {region} | {n / total:.2f} | {method} "
                f"| {10 * np.log10(peak / sq):.2f} | {shown} | {np.sqrt(rest / n) / sigma:.3f} |"
            )


if __name__ == "__main__":
    main()
