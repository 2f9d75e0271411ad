//! Slices divided by their noise maps before the network, so that it meets one noise level
//! across a slice whatever the g-factor does there (docs/scanner-noise.md).

use crossdenoise_image::floor_aware::partner_tissue;
use crossdenoise_image::magnitude_bias::BiasCorrection;
use crossdenoise_image::noise_map::{NoiseModel, map_level, noise_factor};
use crossdenoise_image::posterior::{self, PriorPlanes};
use ndarray::{Array2, ArrayView2};

use crate::Result;
use crate::series_noise::{MapOrigin, SeriesMaps, SliceMaps};

/// The slices and guides of one call divided by their noise factors ([`noise_factor`]),
/// with the slices' maps and factors to undo it, and where each guide shows tissue
/// ([`partner_tissue`], read against its own map). Not divided (no factors) for a model
/// that is run at the map's levels instead (`local_levels`), which reads the guides'
/// levels.
pub(crate) struct EvenNoise {
    pub flat_images: Vec<Array2<f32>>,
    pub flat_guides: Option<Vec<Array2<f32>>>,
    pub maps: Vec<Array2<f32>>,
    /// Where each slice's map comes from (estimated alone, pooled, or supplied).
    pub origins: Vec<MapOrigin>,
    /// Each slice's noise factor; none when the slices are not divided.
    pub factors: Option<Vec<Array2<f32>>>,
    pub partners: Vec<Array2<bool>>,
    /// Each guide's map's median ([`map_level`]), in the guide's units; only when the
    /// slices are not divided.
    pub guide_levels: Vec<f32>,
}

impl EvenNoise {
    /// Each slice takes the maps `series` prepared for it, or has them estimated alone;
    /// `divide`: whether the slices and guides are divided by their factors.
    pub fn new(
        noise: &NoiseModel,
        coils: u32,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
        series: &SeriesMaps,
        divide: bool,
    ) -> Result<Self> {
        let factor_of = |map: &Array2<f32>| divide.then(|| noise_factor(map.view()));
        let flat = |image: ArrayView2<f32>, factor: Option<&Array2<f32>>| match factor {
            Some(f) => &image / f,
            None => image.to_owned(),
        };
        let mut even = EvenNoise {
            flat_images: Vec::with_capacity(images.len()),
            flat_guides: guides.map(|g| Vec::with_capacity(g.len())),
            maps: Vec::with_capacity(images.len()),
            origins: Vec::with_capacity(images.len()),
            factors: divide.then(|| Vec::with_capacity(images.len())),
            partners: Vec::new(),
            guide_levels: Vec::new(),
        };
        for (i, image) in images.iter().enumerate() {
            // With a guide, each of the two is read beside the other, which tells its air
            // from its tissue too dark to show (training divides its pairs the same way).
            let guide = guides.map(|g| g[i]);
            let prepared = series.get(*image, guide);
            // A slice estimated here is estimated alone.
            let alone = MapOrigin::Estimated { pooled: 1 };
            let (map, origin) = match guide {
                None => match prepared {
                    Some(maps) => (maps.map.clone(), maps.origin),
                    None => {
                        series.may_estimate()?;
                        (noise.sigma(*image)?, alone)
                    }
                },
                Some(g) => {
                    let (image_map, guide_map, origin) = match prepared {
                        Some(SliceMaps {
                            map,
                            guide_map: Some(guide_map),
                            origin,
                        }) => (map.clone(), guide_map.clone(), *origin),
                        _ => {
                            series.may_estimate()?;
                            let (map, guide_map) = noise.sigma_of_pair(*image, g)?;
                            (map, guide_map, alone)
                        }
                    };
                    if let Some(flat_guides) = even.flat_guides.as_mut() {
                        flat_guides.push(flat(g, factor_of(&guide_map).as_ref()));
                    }
                    if !divide {
                        even.guide_levels
                            .push(map_level(guide_map.view()).unwrap_or(0.0));
                    }
                    even.partners
                        .push(partner_tissue(g, guide_map.view(), coils));
                    (image_map, origin)
                }
            };
            let factor = factor_of(&map);
            even.flat_images.push(flat(*image, factor.as_ref()));
            even.maps.push(map);
            even.origins.push(origin);
            if let (Some(factors), Some(factor)) = (even.factors.as_mut(), factor) {
                factors.push(factor);
            }
        }
        Ok(even)
    }

    /// The divided slices and guides, as the network's inputs.
    #[allow(clippy::type_complexity)]
    pub fn views(&self) -> (Vec<ArrayView2<'_, f32>>, Option<Vec<ArrayView2<'_, f32>>>) {
        let images = self.flat_images.iter().map(|a| a.view()).collect();
        let guides = self
            .flat_guides
            .as_ref()
            .map(|g| g.iter().map(|a| a.view()).collect());
        (images, guides)
    }

    /// What is served for slice `i` from the network's prediction `expected` for its divided
    /// slice (`observed`: that slice as the network saw it, both in units of `scale`): back in
    /// the slice's own noise, the factor on the prediction and the observation and the map
    /// as each pixel's sigma, then the posterior step or the bias correction.
    pub fn serve(
        &self,
        i: usize,
        correction: &BiasCorrection,
        observed: ArrayView2<f32>,
        expected: Array2<f32>,
        prior: Option<PriorPlanes>,
        scale: f32,
    ) -> Array2<f32> {
        let (expected, observed) = match &self.factors {
            Some(factors) => (expected * &factors[i], &observed * &factors[i]),
            None => (expected, observed.to_owned()),
        };
        let sigma = self.maps[i].mapv(|s| s / scale);
        let partner = self.partners.get(i).map(|p| p.view());
        posterior::serve(
            correction,
            observed.view(),
            expected,
            prior,
            sigma.view(),
            partner,
            // The inversion's ratio of prediction to sigma is off by the map's error (as
            // far as the slices it pooled allow, or as supplied) and the prediction's own.
            self.origins[i]
                .relative_error()
                .hypot(posterior::PREDICTION_RELATIVE_ERROR),
        )
    }
}

/// Why a model trained on magnitudes of `trained` coils is not served as `served`: it
/// learned one noise floor and spread, and on another it denoises badly and can carry its
/// guide's findings into its output (QUALITY.md, "scanner noise").
pub(crate) fn noise_mismatch(trained: u32, served: u32) -> String {
    let what = |coils: u32| match coils {
        1 => "one coil (Rician)".to_string(),
        l => format!("{l} coils combined by root-sum-of-squares (noncentral chi)"),
    };
    let how = match trained {
        1 => "one sigma per slice (the default) or --noise map --coils 1".to_string(),
        l => format!("--noise map --coils {l}"),
    };
    format!(
        "it was trained on magnitudes of {}, but is asked to serve {}: serve it with {how}, \
         or train a model on data like the scan's (data.coils)",
        what(trained),
        what(served)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossdenoise_image::noise_map::NoiseMapSettings;

    /// The 64 x 64 test slice of `series_noise`.
    fn slice(level: f32, phase: usize) -> Array2<f32> {
        crate::series_noise::tests::slice(64, level, phase)
    }

    #[test]
    fn each_slice_is_served_with_the_error_of_the_slices_its_map_pooled() {
        let noise = NoiseModel::Map(NoiseMapSettings::default());
        let images: Vec<_> = (0..3).map(|k| slice(0.02, k)).collect();
        let guides: Vec<_> = (0..3).map(|k| slice(0.03, k + 5)).collect();
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        let guide_views: Vec<_> = guides.iter().map(|g| g.view()).collect();
        let mut series = SeriesMaps::default();
        series.prepare(&noise, &views, Some(&guide_views)).unwrap();
        // Two slices of the prepared series, and one that was not prepared.
        let stranger = slice(0.02, 9);
        let batch = [views[0], views[2], stranger.view()];
        let batch_guides = [guide_views[0], guide_views[2], guide_views[1]];
        let even = EvenNoise::new(&noise, 1, &batch, Some(&batch_guides), &series, true).unwrap();
        let pooled = |n| MapOrigin::Estimated { pooled: n };
        assert_eq!(even.origins, vec![pooled(3), pooled(3), pooled(1)]);
        assert!(pooled(3).relative_error() < pooled(1).relative_error());
    }

    #[test]
    fn a_slice_without_its_supplied_map_is_refused_not_estimated() {
        let noise = NoiseModel::Map(NoiseMapSettings::default());
        let images: Vec<_> = (0..2).map(|k| slice(0.02, k)).collect();
        let guides: Vec<_> = (0..2).map(|k| slice(0.03, k + 5)).collect();
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        let guide_views: Vec<_> = guides.iter().map(|g| g.view()).collect();
        let map = |level: f32| vec![Array2::from_elem(images[0].dim(), level); 2];
        let mut series = SeriesMaps::default();
        series
            .supply(
                &views,
                Some(&guide_views),
                map(0.02),
                Some(map(0.03)),
                0.005,
            )
            .unwrap();
        let served = EvenNoise::new(&noise, 1, &views, Some(&guide_views), &series, true).unwrap();
        assert_eq!(served.maps[1], map(0.02)[1]);
        assert_eq!(served.origins[0], MapOrigin::Supplied { error: 0.005 });
        // A slice that was not supplied, or a supplied one beside another guide.
        let stranger = slice(0.02, 9);
        for (image, guide) in [
            (stranger.view(), guide_views[0]),
            (views[0], guide_views[1]),
        ] {
            let err = EvenNoise::new(&noise, 1, &[image], Some(&[guide]), &series, true)
                .err()
                .expect("refused");
            assert!(err.to_string().contains("none for this slice"), "{err}");
        }
        // Preparing the next series by estimation lifts it.
        series.prepare(&noise, &views[..1], None).unwrap();
        assert!(EvenNoise::new(&noise, 1, &[stranger.view()], None, &series, true).is_ok());
    }
}
