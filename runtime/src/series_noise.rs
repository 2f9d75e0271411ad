//! The noise maps of a series, estimated once from all of its slices and then served slice
//! by slice.
//!
//! The slices of one acquisition share their coil array and acceleration, so their
//! g-factor map: pooled, every tile of the map rests on all of their blocks, and the
//! 8-coil noncentral chi correction in fat-suppressed tissue, which needs the sigma to a
//! percent, gets it (`crossdenoise_image::noise_map::estimate_pair_noise_maps`,
//! docs/scanner-noise.md). Callers that denoise a series file by file (the CLI, the DICOM
//! node) prepare the series first; each later call finds its slice's maps by the slice's
//! and its guide's pixels, and a slice that was not prepared is estimated alone, as before.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crossdenoise_image::Error as ImageError;
use crossdenoise_image::growing_series::GrowingSeries;
use crossdenoise_image::noise_map::{
    NoiseModel, estimate_pair_noise_maps, estimate_series_noise_maps, map_relative_error,
};
use ndarray::{Array2, ArrayView2};

use crate::Result;
use crate::session_io::one_guide_each;

/// What preparing a series did.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesNoise {
    /// One map estimated from all `slices`, each served with its own.
    Pooled { slices: usize },
    /// Nothing to pool: one sigma per slice, or a series of one slice.
    Unneeded,
    /// The slices are not one acquisition (`reason`): each slice's map is estimated alone.
    PerSlice { reason: String },
    /// Up to `pooled` slices share one map; the others' own maps were too far off it
    /// (`reason` names them), and they are pooled among themselves where they agree, each
    /// mapped alone otherwise.
    Split { pooled: usize, reason: String },
}

impl SeriesNoise {
    /// What a user should be told of it, if anything: the maps were not all pooled.
    pub fn warning(&self) -> Option<String> {
        match self {
            SeriesNoise::Pooled { .. } | SeriesNoise::Unneeded => None,
            SeriesNoise::PerSlice { reason } => Some(format!("estimated slice by slice: {reason}")),
            SeriesNoise::Split { pooled, reason } => Some(format!(
                "pooled over up to {pooled} slices, not all: {reason}"
            )),
        }
    }
}

/// What adding a slice to a [`GrowingSeries`] did: how many slices its map pooled (itself
/// included), why the slices before were let go when it started the series anew, and why
/// it was set apart from the series' pool when it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub pooled: usize,
    pub restarted: Option<String>,
    pub apart: Option<String>,
}

/// A slice's maps, its own and its guide's, and where they come from.
#[derive(Debug)]
pub(crate) struct SliceMaps {
    pub map: Array2<f32>,
    pub guide_map: Option<Array2<f32>>,
    pub origin: MapOrigin,
}

/// Where a slice's noise maps come from, which says how far off they may be: the serving
/// integrates that error out of the noncentral chi inversion (`posterior::Inversion`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MapOrigin {
    /// Estimated from the images, pooled over this many slices of their series (1: alone).
    Estimated { pooled: usize },
    /// Given with the images (measured: a noise scan and a g-factor map), off by this
    /// relative rms.
    Supplied { error: f32 },
}

impl MapOrigin {
    /// The maps' relative error (rms).
    pub fn relative_error(&self) -> f32 {
        match *self {
            MapOrigin::Estimated { pooled } => map_relative_error(pooled),
            MapOrigin::Supplied { error } => error,
        }
    }
}

/// The maps of the series last prepared, by their slice's (and guide's) pixels.
#[derive(Debug, Default)]
pub(crate) struct SeriesMaps {
    by_slice: HashMap<u64, SliceMaps>,
    /// Maps were supplied: a slice without its own is refused, never estimated in their
    /// place.
    supplied: bool,
}

impl SeriesMaps {
    /// Estimates the maps of `images` (with `guides`, each read beside its own) as one
    /// series under `noise`, forgetting the series before. A series that is not one
    /// acquisition (slices of different sizes or noise levels) is not an error: its slices
    /// are then estimated one by one, and the reason says why.
    pub fn prepare(
        &mut self,
        noise: &NoiseModel,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
    ) -> Result<SeriesNoise> {
        self.by_slice.clear();
        self.supplied = false;
        let NoiseModel::Map(settings) = noise else {
            return Ok(SeriesNoise::Unneeded);
        };
        if images.len() < 2 {
            return Ok(SeriesNoise::Unneeded);
        }
        if let Some(g) = guides {
            one_guide_each(images.len(), g.len())?;
        }
        let maps = match guides {
            Some(g) => estimate_pair_noise_maps(images, g, settings)
                .map(|(own, theirs)| (own, Some(theirs))),
            None => estimate_series_noise_maps(images, None, settings).map(|own| (own, None)),
        };
        let (own, theirs) = match maps {
            Ok(m) => m,
            Err(ImageError::Invalid {
                what: "noise map series",
                reason,
            }) => return Ok(SeriesNoise::PerSlice { reason }),
            Err(e) => return Err(e.into()),
        };
        let reason = [
            own.apart_reason(),
            theirs
                .as_ref()
                .and_then(|t| t.apart_reason())
                .map(|r| format!("their guides: {r}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        let counts: Vec<usize> = (0..images.len()).map(|k| own.pooled(k)).collect();
        let pooled = counts.iter().copied().max().unwrap_or(0);
        let mut guide_maps = theirs.map(|t| t.maps.into_iter());
        for (k, map) in own.maps.into_iter().enumerate() {
            let maps = SliceMaps {
                map,
                guide_map: guide_maps.as_mut().and_then(|g| g.next()),
                origin: MapOrigin::Estimated { pooled: counts[k] },
            };
            self.by_slice
                .insert(key(images[k], guides.map(|g| g[k])), maps);
        }
        Ok(if reason.is_empty() {
            SeriesNoise::Pooled {
                slices: images.len(),
            }
        } else if pooled < 2 {
            SeriesNoise::PerSlice { reason }
        } else {
            SeriesNoise::Split { pooled, reason }
        })
    }

    /// Adds `images` (with `guides`) to `series` in order and keeps each one's maps, pooled
    /// with the slices of the series before it, beside what is already prepared (several
    /// connections' series may share one call).
    pub fn add_arrived(
        &mut self,
        series: &mut GrowingSeries,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
    ) -> Result<Vec<Arrival>> {
        if let Some(g) = guides {
            one_guide_each(images.len(), g.len())?;
        }
        let mut arrivals = Vec::with_capacity(images.len());
        for (k, image) in images.iter().enumerate() {
            let guide = guides.map(|g| g[k]);
            let noise = series.add(*image, guide)?;
            let maps = SliceMaps {
                map: noise.map,
                guide_map: noise.partner_map,
                origin: MapOrigin::Estimated {
                    pooled: noise.pooled,
                },
            };
            self.by_slice.insert(key(*image, guide), maps);
            arrivals.push(Arrival {
                pooled: noise.pooled,
                restarted: noise.restarted,
                apart: noise.apart,
            });
        }
        Ok(arrivals)
    }

    /// Keeps `maps` (and `guide_maps`, one per guide: a guided model divides its guide by
    /// its map too) as the noise maps of `images` (with `guides`), each off by `error`
    /// relatively, beside what is already prepared. Each map must have its slice's size
    /// and a positive, finite sigma at every pixel; the error names the first that does
    /// not (`k`: its place in `images`).
    pub fn supply(
        &mut self,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
        maps: Vec<Array2<f32>>,
        guide_maps: Option<Vec<Array2<f32>>>,
        error: f32,
    ) -> Result<()> {
        let invalid = |reason: String| {
            crate::Error::from(ImageError::Invalid {
                what: "noise map",
                reason,
            })
        };
        if !(error.is_finite() && error >= 0.0) {
            return Err(invalid(format!(
                "error {error} is not a finite fraction >= 0"
            )));
        }
        let check = |what: &str, images: &[ArrayView2<f32>], maps: &[Array2<f32>]| {
            if maps.len() != images.len() {
                return Err(invalid(format!(
                    "{} {what} maps for {} slices",
                    maps.len(),
                    images.len()
                )));
            }
            for (k, (image, map)) in images.iter().zip(maps).enumerate() {
                if map.dim() != image.dim() {
                    return Err(invalid(format!(
                        "{what} map {k} is {:?}, its slice {:?}",
                        map.dim(),
                        image.dim()
                    )));
                }
                if let Some(v) = map.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                    return Err(invalid(format!(
                        "{what} map {k} has a sigma of {v}: not a positive, finite value"
                    )));
                }
            }
            Ok(())
        };
        check("slice", images, &maps)?;
        let guide_maps = match (guides, guide_maps) {
            (None, None) => vec![None; images.len()],
            (Some(g), Some(m)) => {
                one_guide_each(images.len(), g.len())?;
                check("guide", g, &m)?;
                m.into_iter().map(Some).collect()
            }
            (Some(_), None) => {
                return Err(invalid(
                    "a guided model divides its guide by the guide's map too: none given".into(),
                ));
            }
            (None, Some(_)) => return Err(invalid("guide maps without guides".into())),
        };
        let origin = MapOrigin::Supplied { error };
        for (k, (map, guide_map)) in maps.into_iter().zip(guide_maps).enumerate() {
            let key = key(images[k], guides.map(|g| g[k]));
            let maps = SliceMaps {
                map,
                guide_map,
                origin,
            };
            self.by_slice.insert(key, maps);
        }
        self.supplied = true;
        Ok(())
    }

    /// Whether a slice that was not prepared may have its maps estimated: not once maps
    /// were supplied, where an estimate would stand in for a measurement unannounced (a
    /// slice read differently from how its map was matched, a file added since).
    pub fn may_estimate(&self) -> Result<()> {
        if self.supplied {
            return Err(ImageError::Invalid {
                what: "noise map",
                reason: "maps were supplied for this series, but none for this slice (with \
                         this guide)"
                    .into(),
            }
            .into());
        }
        Ok(())
    }

    /// The prepared maps of `image` beside `guide`, if it was prepared with that guide.
    pub fn get(
        &self,
        image: ArrayView2<f32>,
        guide: Option<ArrayView2<f32>>,
    ) -> Option<&SliceMaps> {
        if self.by_slice.is_empty() {
            return None;
        }
        self.by_slice.get(&key(image, guide))
    }
}

/// A slice's identity: its size and pixels, and its guide's.
fn key(image: ArrayView2<f32>, guide: Option<ArrayView2<f32>>) -> u64 {
    let mut hasher = DefaultHasher::new();
    for plane in std::iter::once(image).chain(guide) {
        plane.dim().hash(&mut hasher);
        for v in plane.iter() {
            v.to_bits().hash(&mut hasher);
        }
    }
    guide.is_some().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crossdenoise_image::noise_map::NoiseMapSettings;

    /// A bright square on black with a deterministic ripple of `level` as its "noise".
    pub(crate) fn slice(size: usize, level: f32, phase: usize) -> Array2<f32> {
        Array2::from_shape_fn((size, size), |(i, j)| {
            let ripple = level * (((i * 7 + j * 13 + phase) % 11) as f32 / 5.0 - 1.0).abs();
            let inside =
                (size / 4..size * 3 / 4).contains(&i) && (size / 4..size * 3 / 4).contains(&j);
            ripple + if inside { 0.5 } else { 0.0 }
        })
    }

    #[test]
    fn a_prepared_series_serves_each_slice_its_pooled_maps() {
        let map = NoiseModel::Map(NoiseMapSettings::default());
        let images: Vec<_> = (0..3).map(|k| slice(64, 0.02, k)).collect();
        let guides: Vec<_> = (0..3).map(|k| slice(64, 0.03, k + 5)).collect();
        let (views, guide_views): (Vec<_>, Vec<_>) = images
            .iter()
            .zip(&guides)
            .map(|(i, g)| (i.view(), g.view()))
            .unzip();
        let mut series = SeriesMaps::default();
        let done = series.prepare(&map, &views, Some(&guide_views)).unwrap();
        assert_eq!(done, SeriesNoise::Pooled { slices: 3 });
        let settings = NoiseMapSettings::default();
        let (own, theirs) = estimate_pair_noise_maps(&views, &guide_views, &settings).unwrap();
        for k in 0..3 {
            let maps = series
                .get(views[k], Some(guide_views[k]))
                .expect("prepared");
            assert_eq!(maps.map, own.maps[k]);
            assert_eq!(maps.guide_map.as_ref(), Some(&theirs.maps[k]));
            assert_eq!(maps.origin, MapOrigin::Estimated { pooled: 3 });
        }
        // Another slice, or the same slice with another guide (or none), was not prepared.
        let other = slice(64, 0.02, 9);
        assert!(series.get(other.view(), Some(guide_views[0])).is_none());
        assert!(series.get(views[0], Some(guide_views[1])).is_none());
        assert!(series.get(views[0], None).is_none());
        // Preparing again forgets the series before.
        assert_eq!(
            series.prepare(&map, &views[..1], None).unwrap(),
            SeriesNoise::Unneeded
        );
        assert!(series.get(views[1], Some(guide_views[1])).is_none());
    }

    #[test]
    fn a_series_that_is_not_one_acquisition_is_served_slice_by_slice() {
        let map = NoiseModel::Map(NoiseMapSettings::default());
        let images = [slice(64, 0.02, 0), slice(64, 0.05, 1)];
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        let mut series = SeriesMaps::default();
        let done = series.prepare(&map, &views, None).unwrap();
        match &done {
            SeriesNoise::PerSlice { reason } => {
                assert!(reason.contains("1 of 2 slices set apart"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(done.warning().unwrap().contains("slice by slice"));
        // Each slice is served its own map, as if alone.
        for view in &views {
            let own = series.get(*view, None).unwrap();
            assert_eq!(own.origin, MapOrigin::Estimated { pooled: 1 });
        }
        assert_eq!(
            series.prepare(&NoiseModel::Slice, &views, None).unwrap(),
            SeriesNoise::Unneeded
        );
        let short = [views[0]];
        let err = series.prepare(&map, &views, Some(&short)).unwrap_err();
        assert!(err.to_string().contains("one guide per slice"), "{err}");
    }

    #[test]
    fn a_slice_off_its_series_is_mapped_alone_and_the_rest_pooled() {
        let map = NoiseModel::Map(NoiseMapSettings::default());
        let images = [slice(64, 0.02, 0), slice(64, 0.02, 1), slice(64, 0.05, 2)];
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        let mut series = SeriesMaps::default();
        let done = series.prepare(&map, &views, None).unwrap();
        let SeriesNoise::Split { pooled, reason } = &done else {
            panic!("{done:?}");
        };
        assert_eq!(*pooled, 2);
        assert!(reason.contains("slice 2 +"), "{reason}");
        assert!(done.warning().unwrap().contains("not all"));
        let origin = |k: usize| series.get(views[k], None).unwrap().origin;
        assert_eq!(origin(0), MapOrigin::Estimated { pooled: 2 });
        assert_eq!(origin(2), MapOrigin::Estimated { pooled: 1 });
    }

    #[test]
    fn supplied_maps_are_served_as_given_and_checked() {
        let images: Vec<_> = (0..2).map(|k| slice(32, 0.02, k)).collect();
        let guides: Vec<_> = (0..2).map(|k| slice(32, 0.03, k + 5)).collect();
        let (views, guide_views): (Vec<_>, Vec<_>) = images
            .iter()
            .zip(&guides)
            .map(|(i, g)| (i.view(), g.view()))
            .unzip();
        let maps = |level: f32| vec![Array2::from_elem((32, 32), level); 2];
        let mut series = SeriesMaps::default();
        series
            .supply(
                &views,
                Some(&guide_views),
                maps(0.02),
                Some(maps(0.03)),
                0.01,
            )
            .unwrap();
        let got = series
            .get(views[1], Some(guide_views[1]))
            .expect("supplied");
        assert_eq!(got.map, maps(0.02)[0]);
        assert_eq!(got.guide_map.as_ref(), Some(&maps(0.03)[0]));
        assert_eq!(got.origin, MapOrigin::Supplied { error: 0.01 });
        assert_eq!(got.origin.relative_error(), 0.01);
        // Refused, naming the map at fault: another size, a sigma of 0, a guided series
        // without its guides' maps, a negative error.
        let refused = |series: &mut SeriesMaps, maps, guide_maps, error| {
            series
                .supply(&views, Some(&guide_views), maps, guide_maps, error)
                .unwrap_err()
                .to_string()
        };
        let mut small = maps(0.02);
        small[1] = Array2::from_elem((16, 32), 0.02);
        let err = refused(&mut series, small, Some(maps(0.03)), 0.01);
        assert!(err.contains("slice map 1 is (16, 32)"), "{err}");
        let mut zero = maps(0.03);
        zero[0][(3, 4)] = 0.0;
        let err = refused(&mut series, maps(0.02), Some(zero), 0.01);
        assert!(err.contains("guide map 0 has a sigma of 0"), "{err}");
        let err = refused(&mut series, maps(0.02), None, 0.01);
        assert!(err.contains("guide's map too"), "{err}");
        let err = refused(&mut series, maps(0.02), Some(maps(0.03)), -0.1);
        assert!(err.contains("error -0.1"), "{err}");
    }
}
