//! Whether a pair's pixels agree with its labels. In a proton-density image fat is among the
//! brightest tissue (subcutaneous fat, marrow); fat suppression makes it dark, leaving only
//! fluid and cartilage bright. So a large share of a PD slice's tissue is bright, and a
//! small share of a PDFS slice's: two series whose labels were swapped show it the other
//! way round. The share is scale-free (each series has its own scaling) and is best compared
//! between the two series of one pair, since coils, field strengths, noise and anatomy move
//! it. A series with no partner can only be held against fixed limits ([`check_series`]),
//! wide ones, set on the phantoms.

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

/// Fixed limits on a lone series' median bright share: a PD series must show at least
/// `pd_min` of its tissue bright, a PDFS series at most `pdfs_max`. On the phantoms a PD
/// series' median is 0.41-0.44 at SNR 25, 0.28 at SNR 8 and 0.23 at SNR 5, and a PDFS
/// series' 0.03-0.04 at SNR 20, 0.10-0.11 at SNR 6 and 0.15-0.16 at SNR 4 (noise lifts the
/// one and lowers the other); below SNR 4 the two meet and no fixed limit tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeriesLimits {
    /// 0 turns the PD check off.
    pub pd_min: f64,
    /// 1 turns the PDFS check off.
    pub pdfs_max: f64,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            pd_min: 0.2,
            pdfs_max: 0.25,
        }
    }
}

impl SeriesLimits {
    /// The limit that is not a share in 0..=1, by its key.
    pub fn problem(&self) -> Option<&'static str> {
        [("pd_min", self.pd_min), ("pdfs_max", self.pdfs_max)]
            .into_iter()
            .find(|(_, v)| !(0.0..=1.0).contains(v))
            .map(|(key, _)| key)
    }
}

/// An error naming the share and its limit when a lone series' pixels disagree with its
/// label: `fat_suppressed` for a series labelled PDFS, `shares` one per slice.
pub fn check_series(
    fat_suppressed: bool,
    shares: &[f64],
    limits: SeriesLimits,
) -> Result<(), String> {
    let share = median(shares);
    if fat_suppressed && share > limits.pdfs_max {
        return Err(format!(
            "the pixels disagree with the label: {:.0}% of the PDFS series' tissue is bright, above the {:.0}% a fat-suppressed series shows (fat bright where it should be suppressed)",
            share * 100.0,
            limits.pdfs_max * 100.0
        ));
    }
    if !fat_suppressed && share < limits.pd_min {
        return Err(format!(
            "the pixels disagree with the label: {:.0}% of the PD series' tissue is bright, below the {:.0}% a PD series shows (fat suppressed?)",
            share * 100.0,
            limits.pd_min * 100.0
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

    #[test]
    fn lone_series_are_held_against_limits_at_every_snr_the_phantoms_span() {
        let limits = SeriesLimits::default();
        for (snr_pd, snr_pdfs, seed) in [(25.0, 20.0, 3), (12.0, 8.0, 11), (5.0, 4.0, 17)] {
            let generator = PhantomGenerator::new(
                PhantomConfig {
                    size: 96,
                    snr_pd,
                    snr_pdfs,
                },
                seed,
            )
            .unwrap();
            let (mut pd, mut pdfs) = (Vec::new(), Vec::new());
            for i in 0..3 {
                let pair = generator.pair(i);
                pd.push(bright_share(pair.pd.view()));
                pdfs.push(bright_share(pair.pdfs.view()));
            }
            let at = format!("SNR {snr_pd}/{snr_pdfs}: {pd:?} {pdfs:?}");
            assert!(check_series(false, &pd, limits).is_ok(), "{at}");
            assert!(check_series(true, &pdfs, limits).is_ok(), "{at}");
            let e = check_series(false, &pdfs, limits).unwrap_err();
            assert!(e.contains("fat suppressed?"), "{e}");
            if snr_pd >= 8.0 {
                let e = check_series(true, &pd, limits).unwrap_err();
                assert!(e.contains("should be suppressed"), "{e}");
            }
        }
        let off = SeriesLimits {
            pd_min: 0.0,
            pdfs_max: 1.0,
        };
        assert!(
            check_series(true, &[0.9], off).is_ok() && check_series(false, &[0.0], off).is_ok()
        );
        assert_eq!(
            SeriesLimits { pd_min: 1.5, ..off }.problem(),
            Some("pd_min")
        );
    }
}
