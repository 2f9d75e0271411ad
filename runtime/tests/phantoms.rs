//! The synthetic knee phantoms: determinism, the noise law and the sizes they come in.

use crossdenoise_runtime::phantom::{PhantomConfig, PhantomGenerator, Tissue};

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
