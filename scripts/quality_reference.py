"""Scores denoised phantom slices against the clean phantoms, next to BM3D and NLM.

The independent reference for QUALITY.md: the acquired slices, the classical denoisers a
user would otherwise pick (BM3D with the known noise sigma, scikit-image's NLM), and every
output folder given on the command line, each scored per contrast against the clean image
of *its own* contrast (PSNR with the clean image's maximum as the data range and SSIM with
scikit-image's Gaussian-window settings, as the project's own metrics; tissue PSNR over the
pixels where the clean image is above 2% of its maximum, grown by 3 pixels; sharpness =
gradient energy over the clean image's).

The classical denoisers estimate a magnitude's expectation, as a blind-spot network does, so
they are given the same advantages as the product: the true sigma and the same Rician bias
correction the runtime applies (BM3D / NLM + Rician correction), and BM3D also runs inside a
Rician variance-stabilising transform with its exact unbiased inverse (Foi 2011; the
transform and its inverse are built numerically below), and BM3D's mean is also inverted as
a posterior mean that knows the air exists ("floor-aware": floor_aware_amplitude, fitted to
each slice by empirical Bayes; the exact inversion leaves denoised air grey, because the mean
hardly rises above the noise floor), and that inversion once more with the knee's outline
from both contrasts, as the product serves it ("body-aware": inside_body, exact inside the
outline and the point mass only outside). The strongest of these per contrast (by PSNR) is the
fair baseline: quality.json names it under "baseline", and the main job's
headline compares with it. The uncorrected rows stay, for what a user running BM3D as
shipped would get.

Leakage, for every output: a finding's contrast (mean inside its mask minus the mean of the
ring 2..5 pixels outside) in the output against the clean image of the output's contrast, as
a fraction of the finding's strength (its largest contrast in either clean image); images are
compared on the scale of the slice they were computed from (each acquired slice normalised by
its 99.5th percentile). 0 = shown exactly as its own contrast shows it.

    python quality_reference.py PHANTOMS --out DIR --title T \
        --method "guided=pd:OUT/guided/pd,pdfs:OUT/guided/pdfs" \
        --method "cross PD<-PDFS=pd:OUT/cross/pdfs@pdfs" ...

A method's folder entry `contrast:folder` says which contrast the outputs claim to be;
`@source` names the contrast of the acquisition they were computed from when it differs
(the cross path: PD images made from the PDFS acquisition, which the runtime returns in the
PDFS acquisition's units; they are rescaled to the PD acquisition's before scoring).

A set made with a coil array (phantoms.json's "noise": noncentral chi, a g-factor map) gets
the fair baseline its noise calls for: BM3D on the slice divided by its true noise map (unit
noise everywhere), multiplied back, and the noncentral chi mean inverted pixel by pixel with
the map ("BM3D + noise map + chi correction", and the floor-aware inversion of the same
mean); the single-sigma rows then use the map's
median in tissue as their sigma and the Rician correction, as a user treating the scan as
one coil would. With --estimated-maps the same BM3D rows are also given the maps the
product estimated ("BM3D + estimated map + ..."): the fair baseline stays the one given the
true maps, and quality.json names the strongest of these under "estimated_map_baseline",
the comparison in which both methods know only what the images tell. The Rician VST
applies to one coil only and is left out there. Writes DIR/quality.json, DIR/quality.md
(tables) and DIR/<contrast>.png (acquired | methods | clean, first slices).
"""
import argparse
import glob
import json
import math
import os
import time

import numpy as np
from PIL import Image, ImageDraw
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_nl_means
from scipy.special import gammaln, hyp1f1, i0e, i1e
from scipy.ndimage import binary_fill_holes, maximum_filter, uniform_filter
import bm3d

RING = (2, 5)
# The classical methods given the product's advantages (true sigma, Rician bias removed).
FAIR_CANDIDATES = ("BM3D + Rician correction", "NLM + Rician correction", "BM3D in a Rician VST",
                   "BM3D + floor-aware Rician correction", "BM3D + noise map + chi correction",
                   "BM3D + noise map + floor-aware chi correction",
                   "BM3D + body-aware Rician correction",
                   "BM3D + noise map + body-aware chi correction")


def load_dir(d):
    files = sorted(glob.glob(os.path.join(d, "*.npy")))
    return {os.path.basename(f): np.load(f).astype(np.float32) for f in files}


def load_masks(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.png"))):
        name = os.path.splitext(os.path.basename(f))[0] + ".npy"
        out[name] = np.array(Image.open(f)) > 0
    return out


def scale(img):
    return float(np.percentile(img, 99.5))


def tissue_mask(clean):
    """crossdenoise-image's metrics::tissue_mask: above 2% of the maximum, grown by 3 pixels."""
    return maximum_filter(clean > 0.02 * clean.max(), size=7)


def score(clean, out):
    r = float(clean.max())
    psnr = peak_signal_noise_ratio(clean, out, data_range=r)
    m = tissue_mask(clean)
    err = float(np.mean((clean[m].astype(np.float64) - out[m]) ** 2)) if m.any() else 0.0
    tissue = 10 * math.log10(r * r / err) if m.any() and err > 0 else psnr
    ssim = structural_similarity(clean, out, data_range=r, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    g = lambda i: (np.diff(i, axis=0) ** 2).sum() + (np.diff(i, axis=1) ** 2).sum()
    return psnr, ssim, g(out) / g(clean), tissue


def rician_amplitude(mean, sigma):
    """Inverts the Rician mean sigma*m(A/sigma), as crossdenoise-runtime's RicianCorrection."""
    return chi_amplitude(mean, sigma, 1)


def magnitude_mean(t, coils):
    """The mean of a magnitude of `coils` coils at amplitude `t`, both in noise sigmas (the
    Rician mean for one coil)."""
    t = np.asarray(t, dtype=np.float64)
    inside = math.sqrt(2) * math.exp(gammaln(coils + 0.5) - gammaln(coils)) * hyp1f1(
        -0.5, coils, -np.minimum(t, 12 * math.sqrt(coils)) ** 2 / 2)
    return np.where(t > 12 * math.sqrt(coils), np.sqrt(t * t + 2 * coils - 1), inside)


def chi_amplitude(mean, sigma, coils):
    """Inverts the noncentral chi mean of `coils` coils pixel by pixel (sigma may be a map),
    as crossdenoise-image's BiasCorrection::for_coils."""
    t = np.linspace(0, 12 * math.sqrt(coils), 4801)
    m = magnitude_mean(t, coils)
    r = mean / sigma
    a = np.interp(r, m, t) * sigma
    a = np.where(r <= m[0], 0.0, a)
    a = np.where(r >= m[-1], np.sqrt(np.maximum(mean ** 2 - (2 * coils - 1) * sigma ** 2, 0)), a)
    return a.astype(np.float32)


def bm3d_with_map(img, noise_map):
    """BM3D at unit noise on the slice divided by its noise map, multiplied back: the
    magnitude's mean, before any correction."""
    return bm3d.bm3d(img / noise_map, sigma_psd=1.0).astype(np.float32) * noise_map


def inside_body(mean, sigma, partner, partner_sigma, coils=1):
    """Where no pixel may be taken for air, as crossdenoise-image's floor_aware::inside_body
    with a partner: every pixel within 1 row or column (PAIRED_REACH; 2 for a coil array,
    OWN_REACH) of one whose denoised mean is a sigma above the floor's mean or whose
    partner's 3 x 3 mean (its acquired slice, in its own sigmas) is, and every region those
    enclose."""
    cut = float(magnitude_mean(0.0, coils)) + 1.0
    own = mean / np.broadcast_to(sigma, mean.shape) > cut
    ratio = partner / np.broadcast_to(partner_sigma, partner.shape)
    # The 3 x 3 mean with out-of-slice neighbours left out, as partner_tissue computes it.
    ones = np.ones_like(ratio)
    local = uniform_filter(ratio, 3, mode="constant") / uniform_filter(ones, 3, mode="constant")
    tissue = own | (local > cut)
    reach = 1 if coils <= 1 else 2
    near = maximum_filter(tissue.astype(np.uint8), size=2 * reach + 1, mode="constant") > 0
    return binary_fill_holes(near)


def floor_aware_amplitude(mean, sigma, coils=1, body=None):
    """The amplitude a denoised magnitude's mean stands for, as a posterior mean that knows
    the air exists and that the denoised mean is itself uncertain.

    Inverting the mean exactly (rician_amplitude, chi_amplitude) is ill-conditioned at the
    noise floor: the mean rises only by about t^2 / 8 sigma above it, so a denoised air pixel
    a tenth of a sigma above the floor comes back as an amplitude of most of a sigma, and
    the air stays grey. Here the amplitude's prior is a point mass at zero (the air) with
    weight p0 plus a flat density up to the slice's largest amplitude, the denoised mean is
    read as the true mean plus Gaussian error of sd s (in sigmas), and p0 and s are fitted
    to each slice by maximum marginal likelihood (empirical Bayes; a slice without air gets
    p0 near zero and the plain inversion). s is held to 0.01-0.1 sigma: a larger error lets
    the point mass explain fat-suppressed tissue 1-3 sigma above zero as noisy air (PDFS
    lost 1.7-5.3 dB with s up to one sigma; 0.05-0.15 gave the same within 0.1 dB at SNR
    20 / 12, QUALITY.md).

    With `body` (inside_body: the knee's outline from the slice and its partner, as the
    product serves), pixels inside it are inverted exactly and left out of the fit."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), mean.shape)
    r_all = mean.astype(np.float64) / sigma
    r = r_all if body is None else r_all[~body]
    if r.size == 0:
        return chi_amplitude(mean, sigma, coils)
    floor = float(magnitude_mean(0.0, coils))
    tmax = max(float(np.sqrt(max(r_all.max() ** 2 - (2 * coils - 1), 1.0))) * 1.05, 2.0)
    t = np.linspace(0, tmax, 2001)
    mu = magnitude_mean(t, coils)
    counts, edges = np.histogram(r, bins=1000)
    centres = 0.5 * (edges[1:] + edges[:-1])
    used = counts > 0
    best = None
    for s in np.geomspace(0.01, 0.1, 12):
        lik = np.exp(-0.5 * ((centres[used, None] - mu[None, :]) / s) ** 2) / s
        at_floor, signal = lik[:, 0], lik[:, 1:].mean(1)
        for p0 in np.linspace(0.0, 0.95, 39):
            ll = float((counts[used] * np.log(p0 * at_floor + (1 - p0) * signal + 1e-300)).sum())
            if best is None or ll > best[0]:
                best = (ll, s, p0)
    _, s, p0 = best
    grid = np.linspace(min(r_all.min(), 0.0), r_all.max(), 4000)
    logw = -0.5 * ((grid[:, None] - mu[None, :]) / s) ** 2
    prior = np.full(t.shape, (1 - p0) / (len(t) - 1))
    prior[0] = p0
    w = np.exp(logw - logw.max(1, keepdims=True)) * prior[None, :]
    expected = (w * t[None, :]).sum(1) / np.maximum(w.sum(1), 1e-300)
    out = (np.interp(r_all, grid, expected) * sigma).astype(np.float32)
    if body is not None:
        out = np.where(body, chi_amplitude(mean, sigma, coils), out).astype(np.float32)
    return out


class RicianVst:
    """A variance-stabilising transform for Rician data at unit sigma and its exact unbiased
    inverse (Foi, "Noise estimation and removal in MR imaging: the variance-stabilization
    approach", ISBI 2011; Makitalo & Foi's exact unbiased inverse).

    Forward: f(z) = integral of 1 / std(mean) d(mean) along the Rician mean-std curve (below
    the Rayleigh mean, the slope at A = 0 goes on), so that f(z) has about unit variance at
    every amplitude. Inverse: the table A -> E[f(z) | A], computed by integrating f against
    the Rician density, inverted by interpolation: a denoiser's estimate of E[f(z)] maps back
    to the amplitude without bias.
    """

    def __init__(self):
        t = np.linspace(0, 40, 8001)
        x = t * t / 4
        mean = math.sqrt(math.pi / 2) * ((1 + 2 * x) * i0e(x) + 2 * x * i1e(x))
        std = np.sqrt(np.maximum(2 + t * t - mean * mean, 1e-12))
        f = np.concatenate([[0.0], np.cumsum(np.diff(mean) * 0.5 * (1 / std[1:] + 1 / std[:-1]))])
        self.mean, self.f, self.slope0 = mean, f, 1 / std[0]
        z = np.linspace(0, 50, 10001)
        fz = self.forward(z)
        amps = np.linspace(0, 40, 801)
        expected = []
        for a in amps:
            pdf = z * np.exp(-0.5 * (z - a) ** 2) * i0e(z * a)
            expected.append(float((pdf * fz).sum() / pdf.sum()))
        self.amps, self.expected = amps, np.array(expected)

    def forward(self, z):
        z = np.asarray(z, dtype=np.float64)
        inside = np.interp(z, self.mean, self.f)
        below = (z - self.mean[0]) * self.slope0
        beyond = self.f[-1] + (z - self.mean[-1])
        return np.where(z < self.mean[0], below, np.where(z > self.mean[-1], beyond, inside))

    def inverse(self, e):
        e = np.asarray(e, dtype=np.float64)
        a = np.interp(e, self.expected, self.amps)
        beyond = self.amps[-1] + (e - self.expected[-1])
        return np.where(e > self.expected[-1], beyond, np.maximum(a, 0.0))


def bm3d_in_vst(img, sigma, vst):
    stabilised = vst.forward(img / sigma)
    return (vst.inverse(bm3d.bm3d(stabilised, sigma_psd=1.0)) * sigma).astype(np.float32)


def contrast(img, mask):
    near = maximum_filter(mask, size=2 * (RING[0] - 1) + 1)
    far = maximum_filter(mask, size=2 * RING[1] + 1)
    ring = far & ~near
    if not mask.any() or not ring.any():
        return None
    return float(img[mask].mean() - img[ring].mean())


def leakage(out, clean, clean_other, mask):
    c, o, other = contrast(clean, mask), contrast(out, mask), contrast(clean_other, mask)
    if c is None or o is None or other is None:
        return None
    strength = max(abs(c), abs(other))
    return (o - c) / strength if strength > 0 else None


def tile(img, window, size):
    v = np.clip(img / window, 0, 1) * 255
    return Image.fromarray(v.astype(np.uint8)).resize((size, size), Image.NEAREST)


def picture(path, rows, titles, size=192):
    pad = 18
    w = len(titles) * size
    canvas = Image.new("L", (w, pad + len(rows) * size), 24)
    draw = ImageDraw.Draw(canvas)
    for k, t in enumerate(titles):
        draw.text((k * size + 4, 3), t, fill=230)
    for r, (window, images) in enumerate(rows):
        for k, img in enumerate(images):
            canvas.paste(tile(img, window, size), (k * size, pad + r * size))
    canvas.save(path)


def map_rows(what, maps, other_maps, c, other, names, acquired, coils):
    """BM3D on each slice divided by its noise map (`maps`, the partner's `other_maps`), and
    its mean inverted with the chi correction three ways: exactly, floor-aware, and
    body-aware (the outline from both contrasts). `what` names the maps in the rows:
    "noise map" (the true ones, the fair baseline) or "estimated map" (the product's)."""
    mapped = {n: bm3d_with_map(acquired[c][n], maps[n]) for n in names}
    return {
        f"BM3D + {what} + chi correction": (
            {n: chi_amplitude(mapped[n], maps[n], coils) for n in names}, c),
        f"BM3D + {what} + floor-aware chi correction": (
            {n: floor_aware_amplitude(mapped[n], maps[n], coils) for n in names}, c),
        f"BM3D + {what} + body-aware chi correction": (
            {n: floor_aware_amplitude(mapped[n], maps[n], coils, inside_body(
                mapped[n], maps[n], acquired[other][n], other_maps[n], coils))
             for n in names}, c),
    }


def estimated_maps(folder, c, other, names):
    """The noise maps the product estimated for `c` and its partner, from `folder`: BM3D
    given them is what a user without a noise measurement gets, the same advantage the
    product has. Not a fair-baseline candidate: that one is given the true maps."""
    est = {k: load_dir(os.path.join(folder, k)) for k in (c, other)}
    for k in (c, other):
        missing = [n for n in names if n not in est[k]]
        if missing:
            raise SystemExit(f"--estimated-maps: no {k} map for {missing[:5]} in {folder}/{k}")
    return est[c], est[other]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phantoms")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--method", action="append", default=[])
    ap.add_argument("--slices", type=int, default=0, help="score only the first N slices")
    ap.add_argument("--estimated-maps", default="",
                    help="DIR/<contrast>/<name>.npy: the noise maps the product estimated "
                         "(crossdenoise noise-map --series --guide); BM3D is then also given "
                         "these, the same estimate the product serves with")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    manifest = json.load(open(os.path.join(a.phantoms, "phantoms.json")))
    contrasts = ["pd", "pdfs"]
    acquired = {c: load_dir(os.path.join(a.phantoms, c)) for c in contrasts}
    clean = {c: load_dir(os.path.join(a.phantoms, "clean", c)) for c in contrasts}
    names = sorted(acquired["pd"])
    if a.slices:
        names = names[: a.slices]
    findings = {f["name"]: load_masks(os.path.join(a.phantoms, f["masks"]))
                for f in manifest.get("findings", [])}
    scales = {c: {n: scale(acquired[c][n]) for n in names} for c in contrasts}

    # Methods: name -> {contrast: (folder outputs, source contrast)}
    methods = {}
    for spec in a.method:
        label, _, entries = spec.partition("=")
        methods[label] = {}
        for entry in entries.split(","):
            contrast_name, _, folder = entry.partition(":")
            folder, _, source = folder.partition("@")
            methods[label][contrast_name] = (load_dir(folder), source or contrast_name)

    results = {"title": a.title, "phantoms": a.phantoms, "slices": len(names),
               "manifest": manifest, "contrasts": {}}
    timings = {}
    vst = None if (manifest.get("noise") or {}).get("channels", 1) > 1 else RicianVst()
    results["baseline"] = {}
    noise = manifest.get("noise") or {}
    scanner = noise.get("channels", 1) > 1
    if a.estimated_maps and not scanner:
        raise SystemExit(f"--estimated-maps: {a.phantoms} is a single-coil set (phantoms.json "
                         "has no coil noise); BM3D is given one sigma there, not a map")
    for c in contrasts:
        other = "pdfs" if c == "pd" else "pd"
        sigma = manifest[f"sigma_{c}"]
        outs = {"acquired": ({n: acquired[c][n] for n in names}, c)}
        if scanner:
            maps = load_dir(os.path.join(a.phantoms, noise["maps"], c))
            # One sigma for the slice, as a single-coil user would take it: the map's
            # median in tissue.
            sigma = float(np.median(np.concatenate(
                [maps[n][tissue_mask(clean[c][n])] for n in names])))
        t = time.time()
        b = {n: bm3d.bm3d(acquired[c][n], sigma_psd=sigma).astype(np.float32) for n in names}
        timings[f"bm3d {c}"] = (time.time() - t) / len(names)
        outs["BM3D"] = (b, c)
        t = time.time()
        nlm = {n: denoise_nl_means(acquired[c][n], h=0.8 * sigma, sigma=sigma, fast_mode=True,
                                   patch_size=5, patch_distance=6).astype(np.float32)
               for n in names}
        timings[f"nlm {c}"] = (time.time() - t) / len(names)
        outs["NLM"] = (nlm, c)
        outs["BM3D + Rician correction"] = ({n: rician_amplitude(b[n], sigma) for n in names}, c)
        outs["NLM + Rician correction"] = ({n: rician_amplitude(nlm[n], sigma) for n in names}, c)
        if not scanner:
            outs["BM3D + floor-aware Rician correction"] = (
                {n: floor_aware_amplitude(b[n], sigma) for n in names}, c)
            other_sigma = manifest[f"sigma_{other}"]
            outs["BM3D + body-aware Rician correction"] = (
                {n: floor_aware_amplitude(b[n], sigma, 1, inside_body(
                    b[n], sigma, acquired[other][n], other_sigma)) for n in names}, c)
        if scanner:
            coils = noise["dof_coils"]
            other_maps = load_dir(os.path.join(a.phantoms, noise["maps"], other))
            t = time.time()
            outs.update(map_rows("noise map", maps, other_maps, c, other, names, acquired,
                                 coils))
            timings[f"bm3d map {c}"] = (time.time() - t) / len(names)
            if a.estimated_maps:
                own, theirs = estimated_maps(a.estimated_maps, c, other, names)
                outs.update(map_rows("estimated map", own, theirs, c, other, names, acquired,
                                     coils))
        else:
            t = time.time()
            outs["BM3D in a Rician VST"] = ({n: bm3d_in_vst(acquired[c][n], sigma, vst)
                                             for n in names}, c)
            timings[f"bm3d vst {c}"] = (time.time() - t) / len(names)
        for label, per in methods.items():
            if c in per:
                folder, source = per[c]
                missing = [n for n in names if n not in folder]
                if missing:
                    raise SystemExit(f"{label} {c}: no output for {missing[:5]}")
                # An output made from the other contrast's acquisition (the cross path) comes
                # in that acquisition's units: bring it to this contrast's.
                outs[label] = ({n: folder[n] * (scales[c][n] / scales[source][n]) for n in names},
                               c)
        rows = {}
        for label, (images, source) in outs.items():
            s = np.array([score(clean[c][n], images[n]) for n in names])
            leak = {}
            for fname, masks in findings.items():
                errs = []
                for n in names:
                    if n not in masks or not masks[n].any():
                        continue
                    e = leakage(images[n] / scales[source][n], clean[c][n] / scales[c][n],
                                clean[other][n] / scales[other][n], masks[n])
                    if e is not None:
                        errs.append(e)
                if errs:
                    leak[fname] = {"slices": len(errs), "error": float(np.mean(errs)),
                                   "abs_error": float(np.mean(np.abs(errs)))}
            rows[label] = {"psnr": float(s[:, 0].mean()), "tissue_psnr": float(s[:, 3].mean()),
                           "ssim": float(s[:, 1].mean()), "sharpness": float(s[:, 2].mean()),
                           "leakage": leak}
        results["contrasts"][c] = rows
        fair = [l for l in rows if l in FAIR_CANDIDATES]
        results["baseline"][c] = max(fair, key=lambda l: rows[l]["psnr"])
        same = [l for l in rows if "estimated map" in l]
        if same:
            results.setdefault("estimated_map_baseline", {})[c] = max(
                same, key=lambda l: rows[l]["psnr"])
        window = 1.1 * np.median([scales[c][n] for n in names])
        best = (results["baseline"][c], results.get("estimated_map_baseline", {}).get(c))
        shown = [l for l in outs
                 if ("Rician" not in l and "estimated map" not in l) or l in best]
        picture(os.path.join(a.out, f"{c}.png"),
                [(window, [outs[l][0][n] for l in shown] + [clean[c][n]]) for n in names[:3]],
                shown + ["clean"])
    results["seconds_per_slice"] = timings
    json.dump(results, open(os.path.join(a.out, "quality.json"), "w"), indent=2)
    with open(os.path.join(a.out, "quality.md"), "w") as f:
        f.write(markdown(results))
    print(markdown(results))


def markdown(r):
    m = r["manifest"]
    lines = [f"### {r['title']}", "",
             f"{r['slices']} held-out {m['size']} x {m['size']} phantom pairs (seed {m['seed']}), "
             f"PD SNR {m['snr_pd']:g} / PDFS SNR {m['snr_pdfs']:g}; PSNR / SSIM / sharpness "
             f"against the clean image of each output's own contrast; tissue PSNR inside the "
             f"knee (clean above 2% of its maximum, grown by 3 pixels).", ""]
    noise = m.get("noise") or {}
    if noise.get("channels", 1) > 1:
        lines[-2] += (f" Noise: {noise['channels']} coils (neighbours correlated by "
                      f"{noise['correlation']:g}), {noise['combination']} ({noise['distribution']}), "
                      f"acceleration {noise['acceleration']}, g-factor up to "
                      f"{noise['g_factor_max']:.2f}.")
    for c, rows in r["contrasts"].items():
        fair = r.get("baseline", {}).get(c)
        same = r.get("estimated_map_baseline", {}).get(c)
        also = f"; given the product's estimated map: {same}" if same else ""
        lines += [f"**{c.upper()}** (fair baseline: {fair}{also})", "",
                  "| method | PSNR (dB) | tissue PSNR (dB) | SSIM | sharpness | edema leakage "
                  "| fatty lesion leakage |",
                  "|---|---|---|---|---|---|---|"]
        for label, v in rows.items():
            leak = lambda k: (f"{100 * v['leakage'][k]['error']:+.0f}% "
                              f"(|{100 * v['leakage'][k]['abs_error']:.0f}%|)"
                              if k in v["leakage"] else "-")
            name = f"**{label}**" if label == fair else label
            lines.append(f"| {name} | {v['psnr']:.2f} | {v['tissue_psnr']:.2f} | {v['ssim']:.3f} | "
                         f"{v['sharpness']:.2f} | {leak('edema')} | {leak('fatty_lesion')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
