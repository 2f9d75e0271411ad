"""A denoised set's error by region, in units of the true noise sd: bias and rms.

    python scripts/error_by_region.py SET DENOISED

SET is a `crossdenoise phantoms` folder (its clean images and true noise maps under
`clean/`); DENOISED holds `pd/` and `pdfs/` with the served slices of the same names. The
regions: air (the clean image is zero), dark tissue (above zero, under 3 sigma) and bright
tissue (3 sigma and above), each with its share of the slices' squared error (where a gap
to a baseline is to be won). A bias that a region's rms mostly consists of is a correction
at fault (the noise floor, the noise map), not the denoising: it says where a model's gap
to a baseline given the true noise lies.
"""
import argparse
from pathlib import Path

import numpy as np

REGIONS = ("air", "dark tissue", "bright tissue")


def region_masks(clean, sigma):
    return (clean == 0, (clean > 0) & (clean < 3 * sigma), clean >= 3 * sigma)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", type=Path)
    parser.add_argument("denoised", type=Path)
    args = parser.parse_args()
    print("| contrast | region | share of pixels | bias (sigma) | rms (sigma) | share of the error |")
    print("|---|---|---|---|---|---|")
    for contrast in ("pd", "pdfs"):
        sums = {r: [0, 0.0, 0.0] for r in REGIONS}
        for noisy in sorted((args.set / contrast).glob("*.npy")):
            clean = np.load(args.set / "clean" / contrast / noisy.name).astype(np.float64)
            sigma = np.load(args.set / "clean" / "noise" / contrast / noisy.name).astype(np.float64)
            served = np.load(args.denoised / contrast / noisy.name).astype(np.float64)
            for region, mask in zip(REGIONS, region_masks(clean, sigma)):
                error = (served - clean)[mask] / sigma[mask]
                sums[region][0] += mask.sum()
                sums[region][1] += error.sum()
                sums[region][2] += (error**2).sum()
        total = sum(n for n, _, _ in sums.values())
        squares = sum(square for _, _, square in sums.values())
        for region, (n, bias, square) in sums.items():
            if n:
                print(
                    f"| {contrast.upper()} | {region} | {n / total:.2f} | {bias / n:+.3f} "
                    f"| {np.sqrt(square / n):.3f} | {square / max(squares, 1e-300):.2f} |"
                )


if __name__ == "__main__":
    main()
