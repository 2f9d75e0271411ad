//! Averaging a model's outputs over the eight orientations of its input (quarter turns,
//! each with and without a mirror): test-time augmentation. Anatomy has no preferred
//! orientation at the pixel level, so each orientation is another estimate from the same
//! network, whose errors partly differ; their mean is better than any one, at eight times
//! the inference (docs/denoising.md).

use crossdenoise_image::orientation::oriented;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::Result;

/// `plane` (`h x w`, row-major) in orientation (`turns`, `mirror`), row-major.
fn orient(plane: &[f32], (h, w): (usize, usize), turns: usize, mirror: bool) -> Vec<f32> {
    let v = ArrayView2::from_shape((h, w), plane).expect("a whole plane");
    oriented(v, turns, mirror).iter().copied().collect()
}

/// Adds to `out` (`h x w`) the plane `turned` that [`orient`] made of an `h x w` plane
/// with `turns` and `mirror`, turned back.
fn add_back(out: &mut [f32], turned: &[f32], (h, w): (usize, usize), turns: usize, mirror: bool) {
    let target = ArrayViewMut2::from_shape((h, w), out).expect("a whole plane");
    // The target's view in the same orientation lines up with the turned plane.
    for (t, o) in oriented(target, turns, mirror).iter_mut().zip(turned) {
        *t += o;
    }
}

/// `run`'s outputs for the batch `input` (`shape`, `[N, 1, H, W]`) and its `guide`, or, if
/// `average`, their mean over the eight orientations of every plane of both (each output
/// plane turned back before it is added).
pub(crate) fn averaged(
    input: &[f32],
    guide: Option<&[f32]>,
    shape: [usize; 4],
    average: bool,
    mut run: impl FnMut(&[f32], Option<&[f32]>, [usize; 4]) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>> {
    if !average {
        return run(input, guide, shape);
    }
    let [n, _, h, w] = shape;
    let plane = h * w;
    let mut sum: Vec<Vec<f32>> = Vec::new();
    for k in 0..8 {
        let (turns, mirror) = (k / 2, k % 2 == 1);
        let oriented = |batch: &[f32]| -> Vec<f32> {
            batch
                .chunks(plane)
                .flat_map(|p| orient(p, (h, w), turns, mirror))
                .collect()
        };
        let (oh, ow) = if turns % 2 == 1 { (w, h) } else { (h, w) };
        let guide = guide.map(oriented);
        let outputs = run(&oriented(input), guide.as_deref(), [n, 1, oh, ow])?;
        sum.resize_with(outputs.len(), || vec![0.0; n * plane]);
        for (acc, out) in sum.iter_mut().zip(&outputs) {
            for (a, o) in acc.chunks_mut(plane).zip(out.chunks(plane)) {
                add_back(a, o, (h, w), turns, mirror);
            }
        }
    }
    for acc in &mut sum {
        acc.iter_mut().for_each(|v| *v /= 8.0);
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_orientation_turns_back_to_the_plane() {
        let (h, w) = (3, 5);
        let plane: Vec<f32> = (0..h * w).map(|v| v as f32).collect();
        let mut seen = Vec::new();
        for k in 0..8 {
            let (turns, mirror) = (k / 2, k % 2 == 1);
            let o = orient(&plane, (h, w), turns, mirror);
            seen.push(o.clone());
            let mut back = vec![0.0; h * w];
            add_back(&mut back, &o, (h, w), turns, mirror);
            assert_eq!(back, plane, "orientation {k}");
        }
        // Eight different orientations.
        seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
        seen.dedup();
        assert_eq!(seen.len(), 8);
        // A quarter turn of 3 x 5 is 5 x 3 whose first row is the last column.
        let quarter = orient(&plane, (h, w), 1, false);
        assert_eq!(&quarter[..3], &[4.0, 9.0, 14.0]);
    }
}
