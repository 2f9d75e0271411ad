//! A noise map served to a model that reads its noise level, where the model learned on
//! slices of one level: the network is run at a few levels that span the map, on the slice
//! as it is, and each pixel takes the outputs of the runs at its own level, interpolated
//! between the two nearest (docs/scanner-noise.md).
//!
//! Dividing such a slice by its noise factor, as a model trained on divided coil slices
//! is served, gives the network a slice of one noise level but of another contrast: where
//! the noise is twice the median, the anatomy comes in at half its brightness, which a
//! model of uniform noise never saw. On a slice twice as noisy on one side, that half kept
//! 0.77 of its noise against 0.52 when the whole slice was that noisy; run at the half's own
//! level it keeps what the uniform slice keeps.

use ndarray::Array2;

use crossdenoise_image::Padding;
use crossdenoise_image::noise_map::map_level;
use crossdenoise_image::normalize::{NormScale, percentile};

use crate::Result;
use crate::even_noise::EvenNoise;

/// Neighbouring levels are at most this ratio apart: the network's outputs are
/// interpolated in the log of the level between two runs.
pub(crate) const LEVEL_STEP: f32 = 1.5;
/// A map whose 2nd and 98th percentiles are closer than this ratio is run at its median
/// alone: a map's own scatter (a few percent) is no reason to run the network twice.
pub(crate) const ONE_LEVEL_WITHIN: f32 = 1.2;
/// At most this many runs per call, however widely a map spreads (a ratio of 1.5^5 = 7.6
/// between its percentiles; beyond, the outermost levels are stretched).
pub(crate) const MAX_LEVELS: usize = 6;

/// The levels each slice of a call is run at, in the network's units, lowest first.
pub(crate) struct LocalLevels {
    /// Per slice: its levels (as many for every slice) and its map's median.
    slices: Vec<(Vec<f32>, f32)>,
    count: usize,
    /// Each slice's map in the network's units.
    maps: Vec<Array2<f32>>,
    /// Each guide's level in the network's units, for a model that reads it.
    guide_levels: Option<Vec<f32>>,
}

impl LocalLevels {
    /// The levels of a call's slices from their maps (`even`, undivided), each slice and
    /// guide normalised by its scale; `guide_scales` for a model that reads the guide's
    /// level.
    pub fn for_call(
        even: &EvenNoise,
        scales: &[NormScale],
        guide_scales: Option<&[NormScale]>,
    ) -> Self {
        let maps: Vec<Array2<f32>> = (even.maps.iter().zip(scales))
            .map(|(m, s)| m.mapv(|v| v / s.0))
            .collect();
        let mut levels = Self::new(maps);
        levels.guide_levels = guide_scales.map(|g| {
            (even.guide_levels.iter().zip(g))
                .map(|(l, s)| l / s.0)
                .collect()
        });
        levels
    }

    /// The network's outputs: `compute` (of a call's `[N, K]` noise input) run at each level,
    /// blended pixel by pixel.
    pub fn run(
        &self,
        padding: &Padding,
        mut compute: impl FnMut(Option<&[f32]>) -> Result<Vec<Vec<f32>>>,
    ) -> Result<Vec<Vec<f32>>> {
        let runs = (0..self.count)
            .map(|k| compute(Some(&self.inputs(k))))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.blend(runs, padding))
    }

    /// The levels for `maps` (each slice's noise sd per pixel, in the network's units).
    fn new(maps: Vec<Array2<f32>>) -> Self {
        let spans: Vec<(f32, f32, f32)> = maps
            .iter()
            .map(|m| {
                let mut values: Vec<f32> = m.iter().copied().filter(|v| *v > 0.0).collect();
                if values.is_empty() {
                    return (0.0, 0.0, 0.0);
                }
                let median = map_level(m.view()).unwrap_or(0.0);
                let lo = percentile(&mut values, 2.0);
                let hi = percentile(&mut values, 98.0);
                (lo, hi, median)
            })
            .collect();
        let count = spans
            .iter()
            .map(|&(lo, hi, _)| {
                if lo <= 0.0 || hi < ONE_LEVEL_WITHIN * lo {
                    1
                } else {
                    1 + ((hi / lo).ln() / LEVEL_STEP.ln()).ceil() as usize
                }
            })
            .max()
            .unwrap_or(1)
            .clamp(1, MAX_LEVELS);
        let slices = spans
            .into_iter()
            .map(|(lo, hi, median)| {
                let levels = if count == 1 || lo <= 0.0 {
                    vec![median; count]
                } else {
                    let step = (hi / lo).ln() / (count - 1) as f32;
                    (0..count).map(|k| lo * (step * k as f32).exp()).collect()
                };
                (levels, median)
            })
            .collect();
        LocalLevels {
            slices,
            count,
            maps,
            guide_levels: None,
        }
    }

    /// The `[N, K]` noise input of run `k`: each slice's `k`th level, and its guide's level
    /// (its map's median in the network's units) scaled with it, as a g-factor map scales
    /// the noise of both contrasts of a protocol alike.
    fn inputs(&self, k: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for (i, (levels, median)) in self.slices.iter().enumerate() {
            out.push(levels[k]);
            if let Some(g) = &self.guide_levels {
                let ratio = if *median > 0.0 {
                    levels[k] / median
                } else {
                    1.0
                };
                out.push(g[i] * ratio);
            }
        }
        out
    }

    /// The outputs of the runs (`runs[k][output]`, each `[N, ph, pw]` row-major) blended
    /// pixel by pixel at each pixel's level in its map (padded by reflection as the slices
    /// were).
    fn blend(&self, mut runs: Vec<Vec<Vec<f32>>>, padding: &Padding) -> Vec<Vec<f32>> {
        if runs.len() <= 1 {
            return runs.pop().unwrap_or_default();
        }
        let mut out = runs[0].clone();
        for (i, ((levels, _), map)) in self.slices.iter().zip(&self.maps).enumerate() {
            let padded = padding.pad(map.view());
            let plane = padded.len();
            let (lo, hi) = (levels[0], levels[levels.len() - 1]);
            if !(lo > 0.0 && hi > lo) {
                continue;
            }
            let span = (hi / lo).ln();
            let last = (levels.len() - 1) as f32;
            for (p, &s) in padded.iter().enumerate() {
                let t = if s > 0.0 {
                    ((s / lo).ln() / span * last).clamp(0.0, last)
                } else {
                    0.0
                };
                let k0 = (t.floor() as usize).min(levels.len() - 2);
                let f = t - k0 as f32;
                let at = i * plane + p;
                for (o, plane_out) in out.iter_mut().enumerate() {
                    plane_out[at] = (1.0 - f) * runs[k0][o][at] + f * runs[k0 + 1][o][at];
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halves(lo: f32, hi: f32) -> Array2<f32> {
        Array2::from_shape_fn((16, 16), |(_, j)| if j < 8 { lo } else { hi })
    }

    #[test]
    fn a_flat_map_is_run_once_at_its_median() {
        let mut levels = LocalLevels::new(vec![Array2::from_elem((8, 8), 0.1)]);
        assert_eq!(levels.count, 1);
        levels.guide_levels = Some(vec![0.2]);
        assert_eq!(levels.inputs(0), vec![0.1, 0.2]);
    }

    #[test]
    fn levels_span_the_map_at_most_a_step_apart() {
        let mut levels = LocalLevels::new(vec![halves(0.1, 0.2), Array2::from_elem((16, 16), 0.3)]);
        // 0.1 to 0.2 in steps of at most 1.5: three levels.
        assert_eq!(levels.count, 3);
        let first = levels.inputs(0);
        let last = levels.inputs(2);
        assert!((first[0] - 0.1).abs() < 1e-6 && (last[0] - 0.2).abs() < 1e-6);
        // The flat slice of the call keeps its one level in every run.
        assert!((first[1] - 0.3).abs() < 1e-6 && (last[1] - 0.3).abs() < 1e-6);
        // The guide's level follows the slice's, from its median (upper median 0.2).
        levels.guide_levels = Some(vec![0.4, 0.5]);
        let with_guide = levels.inputs(0);
        assert!((with_guide[1] - 0.2).abs() < 1e-6, "{with_guide:?}");
    }

    #[test]
    fn each_pixel_takes_the_run_at_its_level() {
        let levels = LocalLevels::new(vec![halves(0.1, 0.2)]);
        let padding = Padding::to_multiple(16, 16, 1).unwrap();
        // Run k answers k everywhere; one output.
        let runs = || (0..3).map(|k| vec![vec![k as f32; 256]]).collect();
        let out = levels.blend(runs(), &padding);
        assert_eq!(out[0][0], 0.0, "the quiet half: the lowest level's run");
        assert_eq!(out[0][15], 2.0, "the noisy half: the highest level's run");
        // Between two levels, the interpolation in the log of the level.
        let mut middle = LocalLevels::new(vec![halves(0.1, 0.2)]);
        middle.maps = vec![Array2::from_elem((16, 16), 0.1 * 2f32.sqrt())];
        let out = middle.blend(runs(), &padding);
        assert!((out[0][0] - 1.0).abs() < 1e-5, "{}", out[0][0]);
    }
}
