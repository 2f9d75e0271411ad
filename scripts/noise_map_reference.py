"""Scores estimated noise maps against a phantom set's true ones, in tissue.

    python scripts/noise_map_reference.py SET... [--picture PNG]

SET is a `crossdenoise phantoms` folder with `estimated/<contrast>/NNNN.npy` beside it.
Tissue: where the clean image is above 5% of its 99th percentile; air: where it is zero and
no tissue lies within 4 pixels. Prints a Markdown table of the relative error (estimate /
truth - 1) in each: mean, standard deviation, 95th percentile of its absolute value. The
air's figures matter most to the noncentral chi correction: at the floor of 8 coils a 3%
error in sigma leaves about one sigma of grey (docs/scanner-noise.md).
"""
import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def tissue(clean):
    return clean > 0.05 * np.percentile(clean, 99)


def air(clean):
    """Clean zero with no signal within 4 pixels (a square dilation)."""
    signal = clean > 0
    near = np.zeros_like(signal)
    for di in range(-4, 5):
        for dj in range(-4, 5):
            near |= np.roll(np.roll(signal, di, axis=0), dj, axis=1)
    return ~near


def summary(e):
    return f"{e.mean():+.3f} | {e.std():.3f} | {np.percentile(np.abs(e), 95):.3f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--picture", type=Path)
    args = parser.parse_args()
    print("| set | contrast | g-factor max | tissue: mean error | sd | 95th pct abs "
          "| air: mean error | sd | 95th pct abs |")
    print("|---|---|---|---|---|---|---|---|---|")
    tiles = []
    for root in args.sets:
        manifest = json.loads((root / "phantoms.json").read_text())
        for contrast in ("pd", "pdfs"):
            errors, air_errors = [], []
            for est in sorted((root / "estimated" / contrast).glob("*.npy")):
                truth = np.load(root / "clean" / "noise" / contrast / est.name)
                clean = np.load(root / "clean" / contrast / est.name)
                relative = np.load(est) / truth - 1.0
                errors.append(relative[tissue(clean)])
                air_errors.append(relative[air(clean)])
            print(
                f"| {root.name} | {contrast.upper()} | {manifest['noise']['g_factor_max']:.2f} "
                f"| {summary(np.concatenate(errors))} | {summary(np.concatenate(air_errors))} |"
            )
        first = sorted((root / "estimated" / "pd").glob("*.npy"))[0]
        truth = np.load(root / "clean" / "noise" / "pd" / first.name)
        tiles.append((truth, np.load(first)))
    print_by_level(args.sets)
    if args.picture:
        rows = []
        for truth, est in tiles:
            # Both stretched alike from the true map's smallest to its largest value: a
            # g-factor map varies by tens of percent, invisible on a scale from 0.
            lo, hi = truth.min(), truth.max()
            span = max(hi - lo, 1e-6 * hi)
            shown = [(m - lo) / span for m in (truth, est)]
            rows.append(np.concatenate([shown[0], np.ones((truth.shape[0], 4)), shown[1]], axis=1))
            rows.append(np.ones((4, rows[-1].shape[1])))
        picture = (np.clip(np.concatenate(rows[:-1], axis=0), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(picture).save(args.picture)
        print(f"\npicture (rows: sets; true | estimated, PD, first slice, each row stretched "
              f"from the true map's smallest to its largest value): {args.picture}")


# Clean amplitude bands, in units of the true sigma.
LEVELS = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (5.0, 10.0), (10.0, np.inf)]


def print_by_level(sets):
    """The tissue's mean error by its clean amplitude in sigmas. With L coils a faint signal
    A raises the magnitude's second moment by A^2 over 2 L sigma^2, as a sigma sqrt(1 + A^2 /
    2L) times higher would: at 8 coils 1 to 1.5 sigma of fat-suppressed tissue reads as air 3%
    noisier, which no local statistic tells apart (docs/scanner-noise.md)."""
    print("\nTissue error by clean amplitude (in true sigmas), mean (pixels):\n")
    print("| set | contrast | " + " | ".join(f"{lo:g}-{hi:g}" for lo, hi in LEVELS) + " |")
    print("|---|---|" + "---|" * len(LEVELS))
    for root in sets:
        for contrast in ("pd", "pdfs"):
            bands = [[] for _ in LEVELS]
            for est in sorted((root / "estimated" / contrast).glob("*.npy")):
                truth = np.load(root / "clean" / "noise" / contrast / est.name)
                clean = np.load(root / "clean" / contrast / est.name)
                relative = np.load(est) / truth - 1.0
                level = clean / truth
                for band, (lo, hi) in zip(bands, LEVELS):
                    band.append(relative[(level > lo) & (level <= hi)])
            cells = []
            for band in bands:
                values = np.concatenate(band)
                cells.append(f"{values.mean():+.3f} ({values.size})" if values.size else "-")
            print(f"| {root.name} | {contrast.upper()} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
