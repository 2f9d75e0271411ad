"""Checks the posterior step's prior variance against what would have served better.

    python scripts/posterior_weight_check.py SET CONTRAST POSTERIOR PRIOR

SET is a `crossdenoise phantoms` folder (clean/ and the acquired CONTRAST/ slices, true
sigma in phantoms.json); POSTERIOR and PRIOR are folders of the same slices denoised by
`crossdenoise denoise` with and without (`--no-posterior`) the posterior step. Where the
prior is near Gaussian (tissue well above the floor), the posterior mean is
`prior + w (acquired - prior)` with `w = v / (v + sigma^2)` and `v` the prior's variance:
the script recovers `w` per pixel, serves `v` scaled by k instead, and prints the tissue
PSNR (clean above 2% of its maximum, grown by 3 pixels) for each k. A calibrated prior is
best at k = 1; a best k far from 1 says the variance head is off by that factor.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

SCALES = [0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("set", type=Path)
    p.add_argument("contrast")
    p.add_argument("posterior", type=Path)
    p.add_argument("prior", type=Path)
    a = p.parse_args()
    meta = json.loads((a.set / "phantoms.json").read_text())
    sigma = meta["sigma_pd"] if a.contrast == "pd" else meta["sigma_pdfs"]
    sums = {k: [0.0, 0] for k in SCALES}
    prior_only = [0.0, 0]
    peak = 0.0
    for path in sorted((a.set / a.contrast).glob("*.npy")):
        acquired = np.load(path)
        clean = np.load(a.set / "clean" / a.contrast / path.name)
        post = np.load(a.posterior / path.name)
        prior = np.load(a.prior / path.name)
        tissue = binary_dilation(clean > 0.02 * clean.max(), iterations=3)
        peak = max(peak, float(clean.max()))
        d = acquired - prior
        # Where the pixel is close to the prior, w is not recoverable and hardly matters.
        ok = np.abs(d) > 0.3 * sigma
        w = np.clip(np.where(ok, (post - prior) / np.where(ok, d, 1.0), 0.0), 0.0, 0.999)
        for k in SCALES:
            wk = k * w / (k * w + 1.0 - w)
            e = (np.where(ok, prior + wk * d, post) - clean)[tissue]
            sums[k][0] += float(np.sum(e**2))
            sums[k][1] += e.size
        e = (prior - clean)[tissue]
        prior_only[0] += float(np.sum(e**2))
        prior_only[1] += e.size

    def psnr(s):
        return 10 * np.log10(peak**2 / (s[0] / s[1]))

    print(f"{a.contrast}: tissue PSNR of the prior alone {psnr(prior_only):.2f} dB")
    print("| variance scaled by | tissue PSNR (dB) |\n|---|---|")
    for k in SCALES:
        print(f"| {k} | {psnr(sums[k]):.2f} |")


if __name__ == "__main__":
    main()
