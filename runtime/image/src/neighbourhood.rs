//! Square neighbourhoods of a pixel, clipped at the slice's edges: a mask grown by a number
//! of pixels, and a local mean. The tissue mask of the metrics, the leakage measure's rings,
//! the knee's outline at the noise floor and the output guard all read a slice this way, so
//! what "near" means is one rule.

use ndarray::{Array2, ArrayView2};

/// `mask` grown by `radius` pixels in every direction (a square window): a pixel is marked
/// when one within `radius` rows and `radius` columns of it is. Separable: along rows, then
/// along columns.
pub fn grown(mask: ArrayView2<bool>, radius: usize) -> Array2<bool> {
    let (h, w) = mask.dim();
    let rows = Array2::from_shape_fn((h, w), |(i, j)| {
        (j.saturating_sub(radius)..(j + radius + 1).min(w)).any(|k| mask[(i, k)])
    });
    Array2::from_shape_fn((h, w), |(i, j)| {
        (i.saturating_sub(radius)..(i + radius + 1).min(h)).any(|k| rows[(k, j)])
    })
}

/// Each pixel's mean over the pixels within `radius` rows and columns of it; neighbours
/// outside the slice are left out of the mean, so an edge pixel's window is smaller. An
/// infinite or NaN value spreads to every mean whose window holds it.
pub fn local_mean(image: ArrayView2<f64>, radius: usize) -> Array2<f64> {
    let (h, w) = image.dim();
    Array2::from_shape_fn((h, w), |(i, j)| {
        let (mut sum, mut n) = (0.0, 0.0);
        for y in i.saturating_sub(radius)..(i + radius + 1).min(h) {
            for x in j.saturating_sub(radius)..(j + radius + 1).min(w) {
                sum += image[(y, x)];
                n += 1.0;
            }
        }
        sum / n
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pixel_grows_into_its_square_clipped_at_the_edges() {
        let mut mask = Array2::from_elem((7, 7), false);
        mask[(3, 3)] = true;
        mask[(0, 6)] = true;
        let g = grown(mask.view(), 1);
        assert_eq!(g.iter().filter(|&&m| m).count(), 9 + 4);
        assert!(g[(2, 2)] && g[(4, 4)] && !g[(1, 3)] && g[(1, 5)] && !g[(2, 5)]);
        assert_eq!(grown(mask.view(), 0), mask);
    }

    #[test]
    fn the_local_mean_leaves_out_what_lies_outside_the_slice() {
        let image = Array2::from_shape_fn((3, 3), |(i, j)| (3 * i + j) as f64);
        let m = local_mean(image.view(), 1);
        assert_eq!(m[(1, 1)], 4.0);
        // The corner's window holds 0, 1, 3, 4.
        assert_eq!(m[(0, 0)], 2.0);
        let mut odd = image.clone();
        odd[(2, 2)] = f64::INFINITY;
        let m = local_mean(odd.view(), 1);
        assert!(m[(1, 1)].is_infinite() && m[(0, 0)].is_finite());
    }
}
