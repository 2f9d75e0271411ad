//! Reflect-padding to the size the network needs, and cropping back.
//!
//! The U-Net-like encoder halves the image `depth` times, so H and W must be multiples of
//! `2^depth`. Scanner matrices (e.g. 320 x 300 after oversampling removal) often are not;
//! reflection continues the anatomy instead of adding a hard zero edge that the network
//! would try to "denoise". The padding is split evenly between both sides so the image
//! stays centred, and remembered so the output is cropped back exactly.

use ndarray::{Array2, Array4, ArrayView2, ArrayView4, ArrayViewMut2, s};

use crate::{Error, Result};

/// How many rows / columns were added on each side of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Padding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Padding {
    /// The padding that brings `[h, w]` up to the next multiple of `multiple` in each axis.
    pub fn to_multiple(h: usize, w: usize, multiple: usize) -> Result<Self> {
        if multiple == 0 {
            return Err(Error::Invalid {
                what: "padding multiple",
                reason: "must be at least 1".into(),
            });
        }
        let extra = |n: usize| n.div_ceil(multiple) * multiple - n;
        let (eh, ew) = (extra(h), extra(w));
        Ok(Padding {
            top: eh / 2,
            bottom: eh - eh / 2,
            left: ew / 2,
            right: ew - ew / 2,
        })
    }

    /// The padding for a network of the given depth (`2^depth`).
    pub fn for_depth(h: usize, w: usize, depth: u32) -> Result<Self> {
        Padding::to_multiple(h, w, 1usize << depth)
    }

    pub fn is_none(&self) -> bool {
        *self == Padding::default()
    }

    pub fn padded_dim(&self, h: usize, w: usize) -> (usize, usize) {
        (h + self.top + self.bottom, w + self.left + self.right)
    }

    /// Reflect-pads one slice (numpy's `mode="reflect"`: the edge pixel is not repeated).
    /// Pads wider than the image keep reflecting back and forth.
    pub fn pad(&self, image: ArrayView2<f32>) -> Array2<f32> {
        let (h, w) = image.dim();
        let (ph, pw) = self.padded_dim(h, w);
        if self.is_none() {
            return image.to_owned();
        }
        let rows: Vec<usize> = (0..ph)
            .map(|i| reflect(i as isize - self.top as isize, h))
            .collect();
        let cols: Vec<usize> = (0..pw)
            .map(|j| reflect(j as isize - self.left as isize, w))
            .collect();
        Array2::from_shape_fn((ph, pw), |(i, j)| image[[rows[i], cols[j]]])
    }

    /// Reflect-pads `image` into `out` (the padded size), passing every value through `map`
    /// on the way: the runtime normalises and pads in this one pass, straight into the
    /// model's input buffer, without an intermediate image.
    pub fn pad_map_into(
        &self,
        image: ArrayView2<f32>,
        mut out: ArrayViewMut2<f32>,
        map: impl Fn(f32) -> f32,
    ) {
        let (h, w) = image.dim();
        debug_assert_eq!(out.dim(), self.padded_dim(h, w));
        let cols: Vec<usize> = (0..out.ncols())
            .map(|j| reflect(j as isize - self.left as isize, w))
            .collect();
        for (i, mut row) in out.rows_mut().into_iter().enumerate() {
            let src = image.row(reflect(i as isize - self.top as isize, h));
            for (o, &c) in row.iter_mut().zip(&cols) {
                *o = map(src[c]);
            }
        }
    }

    /// Reflect-pads every image of an `[N, C, H, W]` batch.
    pub fn pad_batch(&self, batch: ArrayView4<f32>) -> Array4<f32> {
        let (n, c, h, w) = batch.dim();
        let (ph, pw) = self.padded_dim(h, w);
        let mut out = Array4::<f32>::zeros((n, c, ph, pw));
        for b in 0..n {
            for ch in 0..c {
                out.slice_mut(s![b, ch, .., ..])
                    .assign(&self.pad(batch.slice(s![b, ch, .., ..])));
            }
        }
        out
    }

    /// Removes the padding from a padded slice (a view, no copy).
    pub fn crop<'a>(&self, padded: ArrayView2<'a, f32>) -> ArrayView2<'a, f32> {
        let (ph, pw) = padded.dim();
        padded.slice_move(s![self.top..ph - self.bottom, self.left..pw - self.right])
    }

    /// Removes the padding from every image of a padded batch (a view, no copy).
    pub fn crop_batch<'a>(&self, padded: ArrayView4<'a, f32>) -> ArrayView4<'a, f32> {
        let (_, _, ph, pw) = padded.dim();
        padded.slice_move(s![
            ..,
            ..,
            self.top..ph - self.bottom,
            self.left..pw - self.right
        ])
    }
}

/// Maps an index outside `0..n` back inside by mirror reflection about the edge pixels.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn pads_to_multiple_centred() {
        let p = Padding::for_depth(300, 320, 4).unwrap();
        assert_eq!(
            p,
            Padding {
                top: 2,
                bottom: 2,
                left: 0,
                right: 0
            }
        );
        let p = Padding::to_multiple(13, 16, 16).unwrap();
        assert_eq!((p.top, p.bottom, p.left, p.right), (1, 2, 0, 0));
        assert!(Padding::to_multiple(4, 4, 0).is_err());
    }

    #[test]
    fn pad_map_into_equals_pad_then_map() {
        let img = Array2::from_shape_fn((5, 7), |(i, j)| (i * 7 + j) as f32);
        let p = Padding::to_multiple(5, 7, 4).unwrap();
        let mut out = Array2::zeros(p.padded_dim(5, 7));
        p.pad_map_into(img.view(), out.view_mut(), |v| v * 2.0 + 1.0);
        assert_eq!(out, p.pad(img.view()).mapv(|v| v * 2.0 + 1.0));
    }

    #[test]
    fn reflect_matches_numpy() {
        // numpy.pad([[0,1,2,3]], ((0,0),(2,3)), mode="reflect") -> [2,1,0,1,2,3,2,1,0]
        let img = Array2::from_shape_vec((1, 4), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        let p = Padding {
            top: 0,
            bottom: 0,
            left: 2,
            right: 3,
        };
        let out = p.pad(img.view());
        assert_eq!(
            out.row(0).to_vec(),
            vec![2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0]
        );
        // Wider than the image: keeps bouncing, [0,1] padded by 3 -> [1,0,1,0,1,0,1]
        let img = Array2::from_shape_vec((1, 2), vec![0.0, 1.0]).unwrap();
        let p = Padding {
            top: 0,
            bottom: 0,
            left: 3,
            right: 2,
        };
        assert_eq!(
            p.pad(img.view()).row(0).to_vec(),
            vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        );
    }

    #[test]
    fn crop_undoes_pad_for_slices_and_batches() {
        let img = Array2::from_shape_fn((13, 21), |(i, j)| (i * 100 + j) as f32);
        let p = Padding::for_depth(13, 21, 3).unwrap();
        let padded = p.pad(img.view());
        assert_eq!(padded.dim(), (16, 24));
        assert_eq!(p.crop(padded.view()), img);

        let batch = ndarray::Array4::from_shape_fn((2, 1, 13, 21), |(b, _, i, j)| {
            (b * 1000 + i * 30 + j) as f32
        });
        let padded = p.pad_batch(batch.view());
        assert_eq!(padded.dim(), (2, 1, 16, 24));
        assert_eq!(p.crop_batch(padded.view()), batch);
    }
}
