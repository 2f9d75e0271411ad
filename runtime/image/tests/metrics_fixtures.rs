//! The metrics and the percentile against values computed independently by scikit-image
//! and numpy (`fixtures/make_fixtures.py`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crossdenoise_image::io::read_npy;
use crossdenoise_image::metrics::{Quality, nmse, psnr, ssim};
use crossdenoise_image::normalize::percentile;

#[derive(serde::Deserialize)]
struct Expected {
    data_range: f64,
    psnr: f64,
    ssim: f64,
    nmse: f64,
    percentile_99_5: f64,
}

fn fixtures() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("tests/fixtures/metrics")
}

fn load() -> BTreeMap<String, Expected> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn metrics_match_scikit_image() {
    let cases = load();
    assert_eq!(cases.len(), 3);
    for (name, want) in cases {
        let r = read_npy(&fixtures().join(format!("{name}_ref.npy"))).unwrap();
        let t = read_npy(&fixtures().join(format!("{name}_test.npy"))).unwrap();
        let got_psnr = psnr(r.view(), t.view(), want.data_range).unwrap();
        let got_ssim = ssim(r.view(), t.view(), want.data_range).unwrap();
        let got_nmse = nmse(r.view(), t.view()).unwrap();
        assert!(
            (got_psnr - want.psnr).abs() < 1e-4,
            "{name}: psnr {got_psnr} vs {}",
            want.psnr
        );
        assert!(
            (got_ssim - want.ssim).abs() < 1e-4,
            "{name}: ssim {got_ssim} vs {}",
            want.ssim
        );
        assert!(
            (got_nmse - want.nmse).abs() < 1e-4,
            "{name}: nmse {got_nmse} vs {}",
            want.nmse
        );

        // Quality uses the reference maximum as data range, as the fixtures do.
        let q = Quality::measure(r.view(), t.view()).unwrap();
        assert!((q.psnr - want.psnr).abs() < 1e-4 && (q.ssim - want.ssim).abs() < 1e-4);

        let mut values: Vec<f32> = t.iter().copied().collect();
        let p = f64::from(percentile(&mut values, 99.5));
        let tol = 1e-4 * want.percentile_99_5.abs().max(1.0);
        assert!(
            (p - want.percentile_99_5).abs() < tol,
            "{name}: p99.5 {p} vs {}",
            want.percentile_99_5
        );
    }
}
