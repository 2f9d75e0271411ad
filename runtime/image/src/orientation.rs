//! The eight orientations of a slice (four quarter turns, each mirrored or not): one rule
//! for the training crops that use them as free data and for serving that averages a model
//! over them, so that "turned back" always undoes "turned".

use ndarray::{ArrayBase, Axis, Ix2, RawData};

/// `a` turned by `turns` quarter turns (each: transpose, then the rows reversed), then
/// mirrored left-right if `mirror`: a view of the same data, nothing copied. Applied to a
/// view of the output, it lines the output up with an oriented input's pixels.
pub fn oriented<S: RawData>(
    mut a: ArrayBase<S, Ix2>,
    turns: usize,
    mirror: bool,
) -> ArrayBase<S, Ix2> {
    for _ in 0..turns % 4 {
        a = a.reversed_axes();
        a.invert_axis(Axis(0));
    }
    if mirror {
        a.invert_axis(Axis(1));
    }
    a
}
