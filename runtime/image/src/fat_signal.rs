//! Whether a pair's pixels agree with its labels. In a proton-density image fat is among the
//! brightest tissue (subcutaneous fat, marrow); fat suppression makes it dark, leaving only
//! fluid and cartilage bright. So a large share of a PD slice's tissue is bright, and a
//! small share of a PDFS slice's: two series whose labels were swapped show it the other
//! way round. The share is scale-free (each series has its own scaling) and is compared
//! between the two series of one pair, not against a fixed threshold, since coils, field
//! strengths and anatomy move it.

use ndarray::ArrayView2;

/// Tissue: above this fraction of the slice's 99th percentile.
pub const TISSUE_OF_P99: f32 = 0.1;
/// Bright: above this fraction of the slice's 99th percentile.
pub const BRIGHT_OF_P99: f32 = 0.6;
/// How much larger the PDFS series' bright share must be than the PD series' before the
/// pair is taken as swapped (alike shares, as when a slice holds little fat, are no fault).
pub const SWAP_MARGIN: f64 = 0.1;

/// The share of a slice's tissue that is bright (0 for an empty slice).
pub fn bright_share(image: ArrayView2<f32>) -> f64 {
    let mut values: Vec<f32> = image.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return 0.0;
    }
    let k = ((values.len() - 1) as f64 * 0.99).round() as usize;
    let (_, p99, _) = values.select_nth_unstable_by(k, f32::total_cmp);
    let p99 = *p99;
    if p99 <= 0.0 {
        return 0.0;
    }
    let tissue = values.iter().filter(|&&v| v > TISSUE_OF_P99 * p99).count();
    let bright = values.iter().filter(|&&v| v > BRIGHT_OF_P99 * p99).count();
    if tissue == 0 {
        0.0
    } else {
        bright as f64 / tissue as f64
    }
}

/// An error naming both shares when the series labelled PDFS (`pdfs`, one share per slice)
/// shows more bright tissue than the one labelled PD: fat bright where it should be
/// suppressed.
pub fn check_pair(pd: &[f64], pdfs: &[f64]) -> Result<(), String> {
    let (pd, pdfs) = (median(pd), median(pdfs));
    if pdfs > pd + SWAP_MARGIN {
        return Err(format!(
            "the pixels disagree with the labels: {:.0}% of the PDFS series' tissue is bright against {:.0}% of the PD series' (fat bright where it should be suppressed: labels swapped?)",
            pdfs * 100.0,
            pd * 100.0
        ));
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n => v[n / 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phantom::{PhantomConfig, PhantomGenerator};

    #[test]
    fn phantom_pairs_pass_and_swapped_ones_are_caught() {
        let generator = PhantomGenerator::new(
            PhantomConfig {
                size: 64,
                snr_pd: 12.0,
                snr_pdfs: 8.0,
            },
            5,
        )
        .unwrap();
        let (mut pd, mut pdfs) = (Vec::new(), Vec::new());
        for i in 0..4 {
            let pair = generator.pair(i);
            pd.push(bright_share(pair.pd.view()));
            pdfs.push(bright_share(pair.pdfs.view()));
        }
        assert!(check_pair(&pd, &pdfs).is_ok(), "{pd:?} {pdfs:?}");
        let e = check_pair(&pdfs, &pd).unwrap_err();
        assert!(e.contains("swapped"), "{e}");
        // Alike shares (one series a scaled copy of the other) are no fault.
        assert!(check_pair(&pd, &pd).is_ok());
        assert_eq!(bright_share(ndarray::Array2::zeros((4, 4)).view()), 0.0);
    }
}
