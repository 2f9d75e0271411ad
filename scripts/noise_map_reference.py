"""Scores estimated noise maps against a phantom set's true ones, in tissue.

    python scripts/noise_map_reference.py SET... [--picture PNG]

SET is a `crossdenoise phantoms` folder with `estimated/<contrast>/NNNN.npy` beside it.
Tissue: where the clean image is above 5% of its 99th percentile. Prints a Markdown table of
the relative error (estimate / truth - 1): mean, standard deviation, 95th percentile of its
absolute value.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def tissue(clean):
    return clean > 0.05 * np.percentile(clean, 99)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--picture", type=Path)
    args = parser.parse_args()
    print("| set | contrast | g-factor max | mean error | sd | 95th pct abs |")
    print("|---|---|---|---|---|---|")
    tiles = []
    for root in args.sets:
        manifest = json.loads((root / "phantoms.json").read_text())
        for contrast in ("pd", "pdfs"):
            errors = []
            for est in sorted((root / "estimated" / contrast).glob("*.npy")):
                truth = np.load(root / "clean" / "noise" / contrast / est.name)
                clean = np.load(root / "clean" / contrast / est.name)
                mask = tissue(clean)
                errors.append((np.load(est) / truth - 1.0)[mask])
            e = np.concatenate(errors)
            print(
                f"| {root.name} | {contrast.upper()} | {manifest['noise']['g_factor_max']:.2f} "
                f"| {e.mean():+.3f} | {e.std():.3f} | {np.percentile(np.abs(e), 95):.3f} |"
            )
        first = sorted((root / "estimated" / "pd").glob("*.npy"))[0]
        truth = np.load(root / "clean" / "noise" / "pd" / first.name)
        tiles.append((truth, np.load(first)))
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


if __name__ == "__main__":
    main()
