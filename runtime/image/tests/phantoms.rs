//! The synthetic knee phantoms: determinism, the noise law and the sizes they come in.

use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator, Tissue};

#[test]
fn same_seed_same_slices_other_seed_other_slices() {
    let cfg = PhantomConfig {
        size: 64,
        ..Default::default()
    };
    let g1 = PhantomGenerator::new(cfg, 42).unwrap();
    let g2 = PhantomGenerator::new(cfg, 42).unwrap();
    let g3 = PhantomGenerator::new(cfg, 43).unwrap();
    // Pair 3 is the same whether or not pairs 0..3 were generated first.
    let _ = (g1.pair(0), g1.pair(1));
    let (a, b) = (g1.pair(3), g2.pair(3));
    assert_eq!(a.pd, b.pd);
    assert_eq!(a.pdfs, b.pdfs);
    assert_eq!(a.clean_pd, b.clean_pd);
    assert_ne!(a.clean_pd, g3.pair(3).clean_pd);
    assert_ne!(a.clean_pd, g1.pair(4).clean_pd);
}

#[test]
fn pd_and_pdfs_noise_are_independent() {
    let g = PhantomGenerator::new(PhantomConfig::default(), 9).unwrap();
    let p = g.pair(0);
    // Where both signals are well above the noise, Rician noise is nearly Gaussian and
    // unbiased, so the residuals measure the noise itself (in air both would share the
    // Rayleigh bias).
    let (mut n_pd, mut n_pdfs) = (Vec::new(), Vec::new());
    for i in 0..p.pd.len() {
        let (c_pd, c_pdfs) = (
            p.clean_pd.as_slice().unwrap()[i],
            p.clean_pdfs.as_slice().unwrap()[i],
        );
        if c_pd > 0.25 && c_pdfs > 0.25 {
            n_pd.push(f64::from(p.pd.as_slice().unwrap()[i] - c_pd));
            n_pdfs.push(f64::from(p.pdfs.as_slice().unwrap()[i] - c_pdfs));
        }
    }
    assert!(n_pd.len() > 2000, "only {} tissue pixels", n_pd.len());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(&n_pd), mean(&n_pdfs));
    let cov: f64 = n_pd
        .iter()
        .zip(&n_pdfs)
        .map(|(a, b)| (a - ma) * (b - mb))
        .sum::<f64>()
        / n_pd.len() as f64;
    let var = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
    let corr = cov / (var(&n_pd, ma) * var(&n_pdfs, mb)).sqrt();
    assert!(corr.abs() < 0.05, "noise correlation {corr}");
}

#[test]
fn background_follows_rayleigh_for_the_set_sigma() {
    for (snr_pd, snr_pdfs) in [(20.0f32, 12.0f32), (50.0, 35.0)] {
        let cfg = PhantomConfig {
            size: 128,
            snr_pd,
            snr_pdfs,
        };
        let g = PhantomGenerator::new(cfg, 1).unwrap();
        let (mut pd, mut pdfs) = (Vec::new(), Vec::new());
        for i in 0..6 {
            let p = g.pair(i);
            for ((&c, &a), &b) in p.clean_pd.iter().zip(p.pd.iter()).zip(p.pdfs.iter()) {
                if c == 0.0 {
                    pd.push(f64::from(a));
                    pdfs.push(f64::from(b));
                }
            }
        }
        assert!(pd.len() > 5000, "only {} air pixels", pd.len());
        for (values, sigma) in [(&pd, cfg.sigma_pd()), (&pdfs, cfg.sigma_pdfs())] {
            let sigma = f64::from(sigma);
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            let want_mean = sigma * (std::f64::consts::PI / 2.0).sqrt();
            let want_std = sigma * ((4.0 - std::f64::consts::PI) / 2.0).sqrt();
            assert!(
                (mean / want_mean - 1.0).abs() < 0.05,
                "mean {mean} vs Rayleigh {want_mean}"
            );
            assert!(
                (std / want_std - 1.0).abs() < 0.05,
                "std {std} vs Rayleigh {want_std}"
            );
        }
    }
}

#[test]
fn size_320_works_and_keeps_the_anatomy() {
    let cfg = PhantomConfig {
        size: 320,
        ..Default::default()
    };
    let p = PhantomGenerator::new(cfg, 2).unwrap().pair(0);
    assert_eq!(p.pd.dim(), (320, 320));
    for t in [
        Tissue::Fat,
        Tissue::Marrow,
        Tissue::Cartilage,
        Tissue::Fluid,
        Tissue::Muscle,
        Tissue::Air,
    ] {
        assert!(
            p.labels.iter().any(|&l| l == t as u8),
            "{t:?} missing at 320"
        );
    }
    // Magnitude images are never negative.
    assert!(p.pd.iter().chain(p.pdfs.iter()).all(|&v| v >= 0.0));
}

/// Mean of `img` where `mask` is set, and in the ring of pixels 2..=5 pixels outside it
/// that belong to `around` (the tissue the finding sits in).
fn inside_and_around(
    img: &ndarray::Array2<f32>,
    mask: &ndarray::Array2<u8>,
    labels: &ndarray::Array2<u8>,
    around: Tissue,
) -> (f32, f32) {
    let (h, w) = mask.dim();
    let (mut si, mut ni, mut so, mut no) = (0.0f32, 0, 0.0f32, 0);
    for i in 0..h {
        for j in 0..w {
            if mask[(i, j)] > 0 {
                si += img[(i, j)];
                ni += 1;
                continue;
            }
            if labels[(i, j)] != around as u8 {
                continue;
            }
            let near = (i.saturating_sub(5)..(i + 6).min(h))
                .flat_map(|a| (j.saturating_sub(5)..(j + 6).min(w)).map(move |b| (a, b)))
                .filter(|&(a, b)| mask[(a, b)] > 0)
                .map(|(a, b)| (a.abs_diff(i)).max(b.abs_diff(j)))
                .min();
            if near.is_some_and(|d| d >= 2) {
                so += img[(i, j)];
                no += 1;
            }
        }
    }
    assert!(ni > 10 && no > 10, "{ni} inside, {no} around");
    (si / ni as f32, so / no as f32)
}

#[test]
fn findings_show_in_one_contrast_only() {
    use crossdenoise_image::phantom::Finding;
    let cfg = PhantomConfig {
        size: 256,
        ..Default::default()
    };
    let g = PhantomGenerator::new(cfg, 5).unwrap();
    let mut seen = [0usize; 2];
    for i in 0..12 {
        let p = g.pair(i);
        for (k, (finding, mask)) in Finding::ALL.iter().zip(&p.findings).enumerate() {
            if mask.iter().all(|&m| m == 0) {
                continue;
            }
            seen[k] += 1;
            let around = match finding {
                Finding::Edema => Tissue::Marrow,
                Finding::FattyLesion => Tissue::Muscle,
            };
            let (pd_in, pd_out) = inside_and_around(&p.clean_pd, mask, &p.labels, around);
            let (fs_in, fs_out) = inside_and_around(&p.clean_pdfs, mask, &p.labels, around);
            let (visible, hidden) = match finding {
                Finding::Edema => ((fs_in, fs_out), (pd_in, pd_out)),
                Finding::FattyLesion => ((pd_in, pd_out), (fs_in, fs_out)),
            };
            assert!(
                visible.0 > 1.8 * visible.1,
                "{finding:?} of pair {i} should stand out: {visible:?}"
            );
            assert!(
                (hidden.0 / hidden.1 - 1.0).abs() < 0.12,
                "{finding:?} of pair {i} should be near invisible: {hidden:?}"
            );
            // The mask and the labels agree.
            let tissue = match finding {
                Finding::Edema => Tissue::Edema,
                Finding::FattyLesion => Tissue::FattyLesion,
            };
            assert!(p.labels.iter().any(|&l| l == tissue as u8));
        }
    }
    assert!(
        seen.iter().all(|&n| (4..12).contains(&n)),
        "slices carrying edema / lesion: {seen:?}"
    );
}
