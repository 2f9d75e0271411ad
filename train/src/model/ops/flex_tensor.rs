//! What the flex kernels read of a tensor: its NCHW sizes and its floats.

use burn::backend::flex::FlexTensor;

/// `[N, C, H, W]` of a 4-D tensor.
pub fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

/// The floats of a tensor made contiguous first (`to_contiguous`), in memory order.
pub fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("a contiguous f32 tensor after to_contiguous")
}
