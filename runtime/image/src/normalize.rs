//! The one intensity normalisation of the project (docs/DESIGN.md, "Data"): per slice, divide by
//! its 99.5th percentile and clamp to [0, 1.5].
//!
//! Magnitude MRI has no absolute scale — receiver gain, coil loading and the protocol move
//! it from scan to scan — so each slice is brought to a common range by a robust maximum
//! (a percentile ignores a few hot pixels). Training, the export metadata and the runtime
//! all use this value, so a served model sees exactly what it was trained on.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The normalisation's parameters; serialised into run configs and ONNX metadata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Percentile (0-100] of the slice's intensities that maps to 1.0.
    pub percentile: f32,
    /// Upper clamp after scaling; the lower clamp is 0 (magnitude images are non-negative).
    pub clamp_max: f32,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization {
            percentile: 99.5,
            clamp_max: 1.5,
        }
    }
}

/// The divisor found for one slice; kept to map the network output back to scanner units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormScale(pub f32);

impl Normalization {
    pub fn validate(&self) -> Result<()> {
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(Error::Invalid {
                what: "normalization.percentile",
                reason: format!("{} is not in (0, 100]", self.percentile),
            });
        }
        if !(self.clamp_max > 0.0 && self.clamp_max.is_finite()) {
            return Err(Error::Invalid {
                what: "normalization.clamp_max",
                reason: format!("{} is not a positive finite number", self.clamp_max),
            });
        }
        Ok(())
    }

    /// Finds the slice's scale. An all-zero slice (e.g. a blank localiser) gets scale 1 so
    /// that it passes through instead of dividing by zero.
    pub fn fit(&self, image: ArrayView2<f32>) -> Result<NormScale> {
        self.fit_values(&mut image.iter().copied().collect::<Vec<f32>>())
    }

    /// [`Normalization::fit`] on a slice's values in any order; reorders them. Lets a
    /// caller that normalises many slices reuse one buffer.
    pub fn fit_values(&self, values: &mut [f32]) -> Result<NormScale> {
        if values.is_empty() {
            return Err(Error::Invalid {
                what: "image",
                reason: "is empty; cannot normalise".into(),
            });
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::Invalid {
                what: "image",
                reason: format!("contains a non-finite value ({bad}); cannot normalise"),
            });
        }
        let p = percentile(values, self.percentile);
        let scale = if p > 0.0 {
            p
        } else {
            let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if max > 0.0 { max } else { 1.0 }
        };
        Ok(NormScale(scale))
    }

    /// Scales and clamps in place with a known scale.
    pub fn apply_in_place(&self, mut image: ArrayViewMut2<f32>, scale: NormScale) {
        let inv = 1.0 / scale.0;
        let hi = self.clamp_max;
        image.mapv_inplace(|v| (v * inv).clamp(0.0, hi));
    }

    /// Fits the scale and returns the normalised copy with it.
    pub fn normalize(&self, image: ArrayView2<f32>) -> Result<(Array2<f32>, NormScale)> {
        let scale = self.fit(image)?;
        let mut out = image.to_owned();
        self.apply_in_place(out.view_mut(), scale);
        Ok((out, scale))
    }

    /// Maps normalised intensities back to the input's units. Clamping is not undone: a
    /// value that was clamped comes back as `clamp_max * scale`.
    pub fn inverse_in_place(&self, mut image: ArrayViewMut2<f32>, scale: NormScale) {
        image.mapv_inplace(|v| v * scale.0);
    }

    /// Writes `image * scale` into `out` (both the same shape).
    pub fn inverse_into(&self, image: ArrayView2<f32>, scale: NormScale, out: ArrayViewMut2<f32>) {
        Zip::from(out).and(image).for_each(|o, &v| *o = v * scale.0);
    }
}

/// Percentile with linear interpolation between order statistics, as numpy's default
/// (`method="linear"`). Reorders `values`; O(n) through selection rather than a sort.
pub fn percentile(values: &mut [f32], q: f32) -> f32 {
    assert!(!values.is_empty(), "percentile of an empty set");
    let n = values.len();
    let rank = f64::from(q) / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = (rank - lo as f64) as f32;
    let (_, &mut lo_v, upper) = values.select_nth_unstable_by(lo, f32::total_cmp);
    if frac == 0.0 || upper.is_empty() {
        return lo_v;
    }
    let hi_v = upper.iter().copied().fold(f32::INFINITY, f32::min);
    lo_v + (hi_v - lo_v) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4, 5], q) for q = 0, 50, 99.5, 100
        let v = [5.0f32, 1.0, 4.0, 2.0, 3.0];
        for (q, want) in [
            (0.0, 1.0),
            (50.0, 3.0),
            (99.5, 4.98),
            (100.0, 5.0),
            (12.5, 1.5),
        ] {
            let got = percentile(&mut v.clone(), q);
            assert!((got - want).abs() < 1e-6, "q={q}: {got} != {want}");
        }
    }

    #[test]
    fn normalise_then_inverse_restores_unclamped_values() {
        let img = Array2::from_shape_fn((20, 20), |(i, j)| (i * 20 + j) as f32);
        let norm = Normalization::default();
        let (n, scale) = norm.normalize(img.view()).unwrap();
        assert!(n.iter().all(|&v| (0.0..=1.5).contains(&v)));
        let mut back = n.clone();
        norm.inverse_in_place(back.view_mut(), scale);
        for (a, b) in img.iter().zip(back.iter()) {
            assert!((a - b).abs() <= 1e-4 * a.max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn clamps_outliers_and_negatives() {
        let mut img = Array2::<f32>::ones((40, 40));
        img[[0, 0]] = 1000.0;
        img[[0, 1]] = -3.0;
        let (n, scale) = Normalization::default().normalize(img.view()).unwrap();
        assert_eq!(scale, NormScale(1.0));
        assert_eq!(n[[0, 0]], 1.5);
        assert_eq!(n[[0, 1]], 0.0);
    }

    #[test]
    fn blank_slice_passes_through_and_nan_is_refused() {
        let zero = Array2::<f32>::zeros((4, 4));
        assert_eq!(
            Normalization::default().fit(zero.view()).unwrap(),
            NormScale(1.0)
        );
        let mut bad = zero.clone();
        bad[[1, 1]] = f32::NAN;
        let err = Normalization::default().fit(bad.view()).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
    }

    #[test]
    fn validate_names_the_field() {
        let n = Normalization {
            percentile: 0.0,
            clamp_max: 1.5,
        };
        assert!(n.validate().unwrap_err().to_string().contains("percentile"));
    }
}
