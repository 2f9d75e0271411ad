//! The two shapes images take: one magnitude slice `[H, W]` and a network batch
//! `[N, 1, H, W]`. Both are checked once at construction so the code that consumes them
//! (normalisation, padding, ONNX Runtime, Burn) can rely on the shape.

use ndarray::{Array2, Array4, ArrayView2, Axis, s};

use crate::{Error, Result};

/// One 2-D magnitude slice, row-major `[H, W]`, non-empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice(Array2<f32>);

impl Slice {
    pub fn new(data: Array2<f32>) -> Result<Self> {
        let (h, w) = data.dim();
        if h == 0 || w == 0 {
            return Err(Error::Shape {
                what: "slice",
                expected: "a non-empty [H, W] image".into(),
                got: format!("[{h}, {w}]"),
            });
        }
        Ok(Slice(data))
    }

    pub fn height(&self) -> usize {
        self.0.nrows()
    }

    pub fn width(&self) -> usize {
        self.0.ncols()
    }

    pub fn view(&self) -> ArrayView2<'_, f32> {
        self.0.view()
    }

    pub fn as_array(&self) -> &Array2<f32> {
        &self.0
    }

    pub fn into_array(self) -> Array2<f32> {
        self.0
    }
}

impl TryFrom<Array2<f32>> for Slice {
    type Error = Error;
    fn try_from(a: Array2<f32>) -> Result<Self> {
        Slice::new(a)
    }
}

/// A batch of single-channel images in the NCHW layout the networks take, `[N, 1, H, W]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch(Array4<f32>);

impl Batch {
    pub fn new(data: Array4<f32>) -> Result<Self> {
        let (n, c, h, w) = data.dim();
        if n == 0 || c != 1 || h == 0 || w == 0 {
            return Err(Error::Shape {
                what: "batch",
                expected: "[N, 1, H, W] with N, H, W > 0".into(),
                got: format!("[{n}, {c}, {h}, {w}]"),
            });
        }
        Ok(Batch(data))
    }

    /// Stacks slices of one common size into a batch.
    pub fn from_slices<'a>(slices: impl IntoIterator<Item = ArrayView2<'a, f32>>) -> Result<Self> {
        let slices: Vec<_> = slices.into_iter().collect();
        let Some(first) = slices.first() else {
            return Err(Error::Shape {
                what: "batch",
                expected: "at least one slice".into(),
                got: "none".into(),
            });
        };
        let (h, w) = first.dim();
        let mut data = Array4::<f32>::zeros((slices.len(), 1, h, w));
        for (i, sl) in slices.iter().enumerate() {
            if sl.dim() != (h, w) {
                return Err(Error::Shape {
                    what: "batch slice",
                    expected: format!("[{h}, {w}] like slice 0"),
                    got: format!("[{}, {}] at slice {i}", sl.nrows(), sl.ncols()),
                });
            }
            data.slice_mut(s![i, 0, .., ..]).assign(sl);
        }
        Batch::new(data)
    }

    pub fn len(&self) -> usize {
        self.0.len_of(Axis(0))
    }

    /// Always false: a batch holds at least one image.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn height(&self) -> usize {
        self.0.len_of(Axis(2))
    }

    pub fn width(&self) -> usize {
        self.0.len_of(Axis(3))
    }

    /// The `i`-th image as a `[H, W]` view.
    pub fn slice(&self, i: usize) -> ArrayView2<'_, f32> {
        self.0.slice(s![i, 0, .., ..])
    }

    pub fn as_array(&self) -> &Array4<f32> {
        &self.0
    }

    pub fn into_array(self) -> Array4<f32> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_slice_is_refused() {
        let err = Slice::new(Array2::zeros((0, 4))).unwrap_err();
        assert!(err.to_string().contains("[0, 4]"), "{err}");
    }

    #[test]
    fn batch_needs_one_channel() {
        let err = Batch::new(Array4::zeros((2, 3, 8, 8))).unwrap_err();
        assert!(err.to_string().contains("[2, 3, 8, 8]"), "{err}");
    }

    #[test]
    fn batch_from_slices_round_trips_and_checks_sizes() {
        let a = Array2::from_shape_fn((4, 5), |(i, j)| (i * 5 + j) as f32);
        let b = a.mapv(|v| -v);
        let batch = Batch::from_slices([a.view(), b.view()]).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!((batch.height(), batch.width()), (4, 5));
        assert_eq!(batch.slice(1), b);

        let c = Array2::<f32>::zeros((4, 6));
        let err = Batch::from_slices([a.view(), c.view()]).unwrap_err();
        assert!(err.to_string().contains("at slice 1"), "{err}");
        assert!(Batch::from_slices(std::iter::empty()).is_err());
    }
}
