//! One model per direction serves every noise level a scanner gives it: the guided models of
//! one run, trained over a range of SNRs, denoise held-out slices at the low and the high end
//! of the product's range, exported and run through ONNX Runtime as a user runs them.

use std::path::Path;

use crossdenoise_image::io::read_slice;
use crossdenoise_image::metrics::Quality;

use crate::util::{crossdenoise, learned_guided_run, stderr};

/// The mean PSNR (against clean) of the acquired and of the denoised slices of `contrast`,
/// and the denoised bright tissue's mean over the clean one's.
fn scores(cwd: &Path, set: &str, contrast: &str, n: usize) -> (f64, f64, f64) {
    let (mut acquired, mut denoised) = (0.0, 0.0);
    let (mut sum_out, mut sum_clean) = (0.0f64, 0.0f64);
    for i in 0..n {
        let read = |p: String| read_slice(&cwd.join(p)).unwrap();
        let clean = read(format!("{set}/clean/{contrast}/{i:04}.npy"));
        let noisy = read(format!("{set}/{contrast}/{i:04}.npy"));
        let out = read(format!("{set}-out/{contrast}/{i:04}.npy"));
        assert!(
            out.iter().all(|v| v.is_finite() && *v >= 0.0),
            "{set} {contrast} {i}"
        );
        let psnr =
            |img: &ndarray::Array2<f32>| Quality::measure(clean.view(), img.view()).unwrap().psnr;
        acquired += psnr(&noisy) / n as f64;
        denoised += psnr(&out) / n as f64;
        // Bright tissue two pixels in from its edges, where blurring moves nothing across an
        // edge: only a level that is off (a bias, a dimming) changes the sums.
        let top = clean.fold(0.0f32, |m, v| m.max(*v));
        let mut mask = clean.mapv(|c| c > 0.2 * top);
        for _ in 0..2 {
            let (h, w) = mask.dim();
            mask = ndarray::Array2::from_shape_fn((h, w), |(y, x)| {
                y > 0
                    && x > 0
                    && y + 1 < h
                    && x + 1 < w
                    && (y - 1..y + 2).all(|yy| (x - 1..x + 2).all(|xx| mask[(yy, xx)]))
            });
        }
        for ((c, o), m) in clean.iter().zip(out.iter()).zip(mask.iter()) {
            if *m {
                sum_out += f64::from(*o);
                sum_clean += f64::from(*c);
            }
        }
    }
    assert!(
        sum_clean > 0.0,
        "{set} {contrast}: no bright tissue to measure"
    );
    (acquired, denoised, sum_out / sum_clean)
}

#[test]
fn one_model_denoises_the_low_and_the_high_end_of_the_snr_range() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (run, _) = learned_guided_run();
    for (model, to) in [("pd.onnx", "a"), ("pdfs.onnx", "b")] {
        let out = crossdenoise(
            &["export", run.to_str().unwrap(), "--out", model, "--to", to],
            cwd,
        );
        assert!(out.status.success(), "export: {}", stderr(&out));
    }
    let n = 4;
    // The product's range: PD SNR 8 to 25, PDFS SNR 6 to 20.
    for (set, snr_pd, snr_pdfs) in [("low", "8", "6"), ("high", "25", "20")] {
        let out = crossdenoise(
            &[
                "phantoms",
                "--out",
                set,
                "--pairs",
                "4",
                "--size",
                "32",
                "--seed",
                "97",
                "--snr",
                snr_pd,
                "--snr-pdfs",
                snr_pdfs,
            ],
            cwd,
        );
        assert!(out.status.success(), "phantoms: {}", stderr(&out));
        for (model, contrast, partner) in [("pd.onnx", "pd", "pdfs"), ("pdfs.onnx", "pdfs", "pd")] {
            let guide = format!("{set}/{partner}");
            let input = format!("{set}/{contrast}");
            let out_dir = format!("{set}-out");
            let out = crossdenoise(
                &[
                    "denoise", "--model", model, "--guide", &guide, &input, "--out", &out_dir,
                ],
                cwd,
            );
            assert!(out.status.success(), "denoise: {}", stderr(&out));
            let (acquired, denoised, level) = scores(cwd, set, contrast, n);
            eprintln!(
                "{set} ({snr_pd} / {snr_pdfs}) {contrast}: acquired {acquired:.2} dB, \
                 denoised {denoised:.2} dB, tissue level {level:.3}"
            );
            // Much better than the acquired image at the low end; at the high end, where a
            // model this small (8 channels, 240 steps) blurs more than there is noise to take
            // away, close to it (the full models are scored at every setting in QUALITY.md).
            // The bright tissue's level kept at both: no bias or dimming that grows with the
            // noise.
            let floor = if set == "low" { 2.0 } else { -2.0 };
            assert!(
                denoised > acquired + floor,
                "{set} {contrast}: denoised {denoised:.2} dB against acquired {acquired:.2} dB"
            );
            assert!(
                (level - 1.0).abs() < 0.05,
                "{set} {contrast}: tissue level {level:.3}"
            );
        }
    }
}
