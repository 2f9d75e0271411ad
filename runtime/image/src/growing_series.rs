//! The noise maps of a series whose slices arrive one at a time.
//!
//! A series' slices share their coil array and acceleration, so their g-factor map, and a
//! map pooled over all of them is several times more precise than a slice's own
//! ([`crate::noise_map::estimate_series_noise_maps`]); the 8-coil chi correction in
//! fat-suppressed tissue needs that precision. A server that answers each image as it
//! comes (the MRD daemon) cannot wait for the series' end, but it has the slices before:
//! each slice's map here is pooled with up to `capacity - 1` slices of its series that came
//! before it. The first slice has its own map, and from a few slices on the maps are most of
//! the way to the whole series'. A slice of another size, or with a partner where there
//! was none, starts a new series. A slice whose own map is off the series' pool (another
//! noise level) is set apart, as a whole series sets such a slice apart
//! ([`crate::noise_map::estimate_series_noise_maps`]): mapped alone, or pooled with the
//! slices set apart with it (another acquisition begun), and the series kept for the
//! slices after it. The older slices leave the pool as the capacity lets them go.

use std::collections::VecDeque;

use ndarray::{Array2, ArrayView2};

use crate::noise_map::{NoiseMapSettings, ReadSlice, combine_pair, split_maps};
use crate::{Error, Result};

/// A series' slices so far, each read once (beside its partner when it has one).
pub struct GrowingSeries {
    settings: NoiseMapSettings,
    capacity: usize,
    slices: VecDeque<Arrived>,
}

/// One slice and its partner, each read beside the other.
struct Arrived {
    own: ReadSlice,
    partner: Option<ReadSlice>,
}

/// A slice's noise, from [`GrowingSeries::add`].
#[derive(Debug)]
pub struct SliceNoise {
    /// The slice's noise sd per pixel.
    pub map: Array2<f32>,
    /// Its partner's, when it has one.
    pub partner_map: Option<Array2<f32>>,
    /// How many slices the maps pooled, this one included.
    pub pooled: usize,
    /// Why the slices before were let go, when this slice started a new series.
    pub restarted: Option<String>,
    /// Why this slice's map was not pooled with the series', when it was set apart.
    pub apart: Option<String>,
}

impl GrowingSeries {
    /// A series of at most `capacity` slices pooled (at least 1: each slice alone).
    pub fn new(settings: NoiseMapSettings, capacity: usize) -> Result<Self> {
        settings.validate()?;
        if capacity == 0 {
            return Err(Error::Invalid {
                what: "noise map series capacity",
                reason: "0 slices would pool not even the slice itself".into(),
            });
        }
        Ok(GrowingSeries {
            settings,
            capacity,
            slices: VecDeque::new(),
        })
    }

    /// How many slices the next slice will be pooled with.
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// The maps of `image` (and of `partner`), pooled with the slices before it; the
    /// oldest beyond the capacity are let go. A slice of another size (or partner) starts
    /// the series anew, one whose own map is off the series' is set apart; each says why.
    pub fn add(
        &mut self,
        image: ArrayView2<f32>,
        partner: Option<ArrayView2<f32>>,
    ) -> Result<SliceNoise> {
        let settings = &self.settings;
        let arrived = Arrived {
            own: ReadSlice::new(image, partner, settings)?,
            partner: partner
                .map(|p| ReadSlice::new(p, Some(image), settings))
                .transpose()?,
        };
        let restarted = self.slices.back().and_then(|last| unlike(last, &arrived));
        if restarted.is_some() {
            self.slices.clear();
        }
        self.slices.push_back(arrived);
        while self.slices.len() > self.capacity {
            self.slices.pop_front();
        }
        // Split as a whole series is: a slice set apart is pooled with the others set
        // apart beside it where they agree (another acquisition begun), else mapped alone.
        let own: Vec<&ReadSlice> = self.slices.iter().map(|a| &a.own).collect();
        let split = split_maps(&own, &self.settings)?;
        let newest = own.len() - 1;
        let pooled = split.pooled[newest];
        let apart = (split.apart.iter())
            .find(|&&(k, _)| k == newest)
            .map(|&(_, off)| apart_reason(pooled, off));
        let partners: Option<Vec<&ReadSlice>> =
            self.slices.iter().map(|a| a.partner.as_ref()).collect();
        let last = |m: Vec<Array2<f32>>| m.into_iter().next_back().expect("one slice at least");
        let (map, partner_map) = match partners {
            None => (last(split.maps.into_iter().map(|m| m.map).collect()), None),
            Some(partners) => {
                let theirs = split_maps(&partners, &self.settings)?;
                let (a, b) = combine_pair(&split, &theirs, &self.settings);
                (last(a), Some(last(b)))
            }
        };
        Ok(SliceNoise {
            map,
            partner_map,
            pooled,
            restarted,
            apart,
        })
    }
}

/// Why a slice `off` its series' pool was set apart, its map pooled over `pooled` slices
/// set apart with it.
fn apart_reason(pooled: usize, off: f32) -> String {
    let off = format!(
        "its own noise map is {:+.0}% off the series' pooled one in its tissue",
        100.0 * off
    );
    if pooled == 1 {
        format!("{off}: mapped alone (read badly alone, or another acquisition begun)")
    } else {
        format!(
            "{off}: pooled over the {pooled} slices set apart with it (another acquisition \
             begun)"
        )
    }
}

/// Why `next` is not of the series `last` belongs to, if it is not: another size, or a
/// partner where there was none (or none where there was one).
fn unlike(last: &Arrived, next: &Arrived) -> Option<String> {
    if last.own.dim() != next.own.dim() {
        return Some(format!(
            "a slice of {:?} after slices of {:?}",
            next.own.dim(),
            last.own.dim()
        ));
    }
    let partner_dim = |a: &Arrived| a.partner.as_ref().map(ReadSlice::dim);
    if partner_dim(last) != partner_dim(next) {
        return Some(format!(
            "a slice whose partner is {:?} after slices whose partners were {:?}",
            partner_dim(next),
            partner_dim(last)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise_map::{estimate_pair_noise_maps, estimate_series_noise_maps};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A bright disc of `level` on black, 8-coil magnitudes of noise sd `sigma`.
    fn slice(size: usize, level: f32, sigma: f32, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut normal = || {
            let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-9), rng.random());
            (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        };
        let c = size as f32 / 2.0;
        Array2::from_shape_fn((size, size), |(i, j)| {
            let r = ((i as f32 - c).powi(2) + (j as f32 - c).powi(2)).sqrt();
            let a = if r < size as f32 * 0.3 { level } else { 0.0 };
            let mut sum = (a + sigma * normal()).powi(2) + (sigma * normal()).powi(2);
            for _ in 1..8 {
                sum += (sigma * normal()).powi(2) + (sigma * normal()).powi(2);
            }
            sum.sqrt()
        })
    }

    fn settings() -> NoiseMapSettings {
        NoiseMapSettings {
            coils: 8,
            ..NoiseMapSettings::default()
        }
    }

    #[test]
    fn each_slice_is_mapped_as_the_series_up_to_it() {
        let images: Vec<_> = (0..4).map(|k| slice(64, 1.0, 0.1, k)).collect();
        let partners: Vec<_> = (0..4).map(|k| slice(64, 0.6, 0.08, 10 + k)).collect();
        let (views, partner_views): (Vec<_>, Vec<_>) = images
            .iter()
            .zip(&partners)
            .map(|(i, p)| (i.view(), p.view()))
            .unzip();
        let mut series = GrowingSeries::new(settings(), 16).unwrap();
        let mut alone = GrowingSeries::new(settings(), 16).unwrap();
        let mut last = None;
        for k in 0..4 {
            let got = series.add(views[k], Some(partner_views[k])).unwrap();
            let (own, theirs) =
                estimate_pair_noise_maps(&views[..=k], &partner_views[..=k], &settings()).unwrap();
            assert_eq!((got.pooled, got.restarted.as_deref()), (k + 1, None));
            assert_eq!(got.map, own.maps[k]);
            assert_eq!(got.partner_map.as_ref(), Some(&theirs.maps[k]));
            let single = alone.add(views[k], None).unwrap();
            let series_maps = estimate_series_noise_maps(&views[..=k], None, &settings())
                .unwrap()
                .maps;
            assert_eq!(single.map, series_maps[k]);
            assert!(single.partner_map.is_none());
            last = Some(got.map);
        }
        // The fourth slice's pooled map is not the one it has alone.
        let (alone_map, _) =
            estimate_pair_noise_maps(&views[3..], &partner_views[3..], &settings()).unwrap();
        assert_ne!(last.unwrap(), alone_map.maps[0]);
    }

    #[test]
    fn the_capacity_bounds_what_is_pooled() {
        let images: Vec<_> = (0..4).map(|k| slice(64, 1.0, 0.1, k)).collect();
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        let mut series = GrowingSeries::new(settings(), 2).unwrap();
        let mut last = None;
        for v in &views {
            last = Some(series.add(*v, None).unwrap());
        }
        let last = last.unwrap();
        assert_eq!((last.pooled, series.len()), (2, 2));
        let expected = estimate_series_noise_maps(&views[2..], None, &settings())
            .unwrap()
            .maps;
        assert_eq!(last.map, expected[1]);
        let err = GrowingSeries::new(settings(), 0).err().unwrap();
        assert!(err.to_string().contains("capacity"), "{err}");
    }

    /// A series of up to 8 slices that has had `images` added.
    fn series_of(images: &[Array2<f32>]) -> GrowingSeries {
        let mut series = GrowingSeries::new(settings(), 8).unwrap();
        for image in images {
            series.add(image.view(), None).unwrap();
        }
        series
    }

    #[test]
    fn a_slice_off_the_series_is_set_apart_and_the_series_kept() {
        let images: Vec<_> = (0..3).map(|k| slice(64, 1.0, 0.1, k)).collect();
        let mut series = series_of(&images);
        // Twice the noise: its own map is far off the series' pool.
        let noisier = slice(64, 1.0, 0.2, 7);
        let got = series.add(noisier.view(), None).unwrap();
        let reason = got.apart.expect("set apart");
        assert!(reason.contains("mapped alone"), "{reason}");
        assert_eq!((got.pooled, got.restarted), (1, None));
        let own = crate::noise_map::estimate_noise_map(noisier.view(), &settings()).unwrap();
        assert_eq!(got.map, own);
        // The next slice of the series is pooled with the three before the odd one, as the
        // whole series would be.
        let next = slice(64, 1.0, 0.1, 3);
        let got = series.add(next.view(), None).unwrap();
        assert_eq!((got.pooled, got.apart.as_deref()), (4, None));
        let mut all: Vec<_> = images.iter().map(|i| i.view()).collect();
        all.extend([noisier.view(), next.view()]);
        let whole = estimate_series_noise_maps(&all, None, &settings()).unwrap();
        assert_eq!(whole.apart.len(), 1, "{:?}", whole.apart);
        assert_eq!(got.map, whole.maps[4]);
    }

    #[test]
    fn slices_set_apart_together_are_pooled_as_an_acquisition_begun() {
        let mut series = series_of(&(0..4).map(|k| slice(64, 1.0, 0.1, k)).collect::<Vec<_>>());
        let noisier: Vec<_> = (0..2).map(|k| slice(64, 1.0, 0.2, 20 + k)).collect();
        series.add(noisier[0].view(), None).unwrap();
        let got = series.add(noisier[1].view(), None).unwrap();
        let reason = got.apart.expect("set apart");
        assert!(reason.contains("the 2 slices set apart"), "{reason}");
        assert_eq!(got.pooled, 2);
        let views: Vec<_> = noisier.iter().map(|n| n.view()).collect();
        let theirs = estimate_series_noise_maps(&views, None, &settings()).unwrap();
        assert_eq!(got.map, theirs.maps[1]);
    }

    #[test]
    fn a_slice_of_another_size_or_partner_starts_a_new_series() {
        let mut series = series_of(&(0..3).map(|k| slice(64, 1.0, 0.1, k)).collect::<Vec<_>>());
        let small = slice(48, 1.0, 0.2, 8);
        let got = series.add(small.view(), None).unwrap();
        assert!(got.restarted.unwrap().contains("(48, 48)"));
        assert_eq!(got.pooled, 1);
        let got = series.add(small.view(), Some(small.view())).unwrap();
        assert!(got.restarted.unwrap().contains("partner"));
        assert_eq!(series.len(), 1);
    }
}
