//! The 3x3, stride-1, padding-1 convolution on flex's CPU tensors: a band of output rows at a
//! time, the band's im2col and one gemm that writes its result straight into the NCHW output.
//!
//! flex's own convolution packs the input into NHWC, multiplies tile by tile and scatters
//! every tile back into NCHW: three passes over the data around each product, a sixth of a
//! training step at 32 channels. Here the im2col rows are copies of whole image rows (the
//! kernel's `(c_in, ky, kx)` order is the weight's own memory order, so the weight is the
//! product's left matrix as it lies), and gemm's destination is the output itself with a row
//! stride of one image plane. The input gradient is the same convolution of the output
//! gradient with the weight transposed and flipped.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use super::flex_tensor::{dims4, f32s};
use super::sgemm::{Strided, matmul};

/// Output pixels per band: the band's im2col (`9 c_in` rows of this many floats, 590 kB at
/// 32 channels) stays in the core's cache while gemm reads it.
const BAND_PIXELS: usize = 2048;

/// Whether [`conv3x3`] takes these tensors: f32 NCHW input and `[C_out, C_in, 3, 3]` weight.
pub fn supports(x: &FlexTensor, weight: &FlexTensor) -> bool {
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && xs.num_dims() == 4
        && ws.num_dims() == 4
        && ws[1] == xs[1]
        && ws[2] == 3
        && ws[3] == 3
        // Empty tensors (a zero-sized band or chunk) are left to Burn's op.
        && xs.num_elements() > 0
        && ws.num_elements() > 0
}

/// `y[n, o] = bias[o] + sum over i, ky, kx of weight[o, i, ky, kx] x[n, i, y + ky - 1, x + kx - 1]`
/// with zeros outside the image. Callers check [`supports`] first.
pub fn conv3x3(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let bias = bias.map(FlexTensor::to_contiguous);
    let [n, c_in, h, w] = dims4(&x);
    let c_out = weight.layout().shape()[0];
    let output = convolve(
        f32s(&x),
        [n, c_in, h, w],
        f32s(&weight),
        c_out,
        bias.as_ref().map(f32s),
    );
    FlexTensor::from_data(TensorData::new(output, Shape::new([n, c_out, h, w])))
}

/// The input gradient of [`conv3x3`] for the output gradient `grad`: the convolution of `grad`
/// with `weight[o, i, 2 - ky, 2 - kx]` read as a `[C_in, C_out, 3, 3]` kernel.
pub fn conv3x3_input_grad(grad: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let weight = weight.to_contiguous();
    let ws = weight.layout().shape();
    let (c_out, c_in) = (ws[0], ws[1]);
    let w = f32s(&weight);
    let mut flipped = vec![0.0f32; w.len()];
    for o in 0..c_out {
        for i in 0..c_in {
            for tap in 0..9 {
                flipped[(i * c_out + o) * 9 + 8 - tap] = w[(o * c_in + i) * 9 + tap];
            }
        }
    }
    let flipped = FlexTensor::from_data(TensorData::new(flipped, Shape::new([c_in, c_out, 3, 3])));
    conv3x3(grad, &flipped, None)
}

/// How the image's rows split into bands of about [`BAND_PIXELS`], and which image and rows a
/// task index (image-major) covers.
#[derive(Clone, Copy)]
struct Bands {
    rows: usize,
    count: usize,
    h: usize,
}

impl Bands {
    fn new(h: usize, w: usize) -> Self {
        let rows = (BAND_PIXELS / w).clamp(1, h);
        Bands {
            rows,
            count: h.div_ceil(rows),
            h,
        }
    }

    /// `(image, first row, rows)`.
    fn task(self, task: usize) -> (usize, usize, usize) {
        let (image, band) = (task / self.count, task % self.count);
        let y0 = band * self.rows;
        (image, y0, self.rows.min(self.h - y0))
    }
}

/// A raw pointer to the output shared by the band tasks, which write disjoint pixels.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes only its own (image, band) pixels of each output channel.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// # Safety
    /// `offset` lies inside the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        unsafe { self.0.add(offset) }
    }
}

fn convolve(
    x: &[f32],
    [n, c_in, h, w]: [usize; 4],
    weight: &[f32],
    c_out: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let plane = h * w;
    let k = c_in * 9;
    let bands = Bands::new(h, w);
    let mut output = vec![0.0f32; n * c_out * plane];
    let out = OutPtr(output.as_mut_ptr());
    (0..n * bands.count)
        .into_par_iter()
        .for_each_init(Vec::<f32>::new, |cols, task| {
            let (image, y0, rows) = bands.task(task);
            let pixels = rows * w;
            let input = &x[image * c_in * plane..(image + 1) * c_in * plane];
            im2col(input, c_in, h, w, y0, rows, cols);
            // SAFETY: the band's pixels of image `image`, `c_out` rows `plane` apart, lie
            // inside `output` and no other task writes them.
            unsafe {
                let dst = out.at(image * c_out * plane + y0 * w);
                if let Some(bias) = bias {
                    for (o, &b) in bias.iter().enumerate() {
                        std::slice::from_raw_parts_mut(dst.add(o * plane), pixels).fill(b);
                    }
                }
                matmul(
                    [c_out, pixels, k],
                    (dst, plane),
                    bias.is_some(),
                    Strided::rows(weight.as_ptr(), k),
                    Strided::rows(cols.as_ptr(), pixels),
                );
            }
        });
    output
}

/// `cols[(i 9 + ky 3 + kx), (y - y0) w + x] = input[i, y + ky - 1, x + kx - 1]`, zero outside.
fn im2col(
    input: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    y0: usize,
    rows: usize,
    cols: &mut Vec<f32>,
) {
    let pixels = rows * w;
    // Every element is written below, so a reused buffer needs no clearing.
    cols.resize(c_in * 9 * pixels, 0.0);
    for (row, dst) in cols.chunks_exact_mut(pixels).enumerate() {
        let (i, ky, kx) = (row / 9, row % 9 / 3, row % 3);
        let channel = &input[i * h * w..(i + 1) * h * w];
        for (r, out) in dst.chunks_exact_mut(w).enumerate() {
            let Some(src_y) = (y0 + r + ky).checked_sub(1).filter(|&y| y < h) else {
                out.fill(0.0);
                continue;
            };
            let src = &channel[src_y * w..(src_y + 1) * w];
            match kx {
                0 => {
                    out[0] = 0.0;
                    out[1..].copy_from_slice(&src[..w - 1]);
                }
                1 => out.copy_from_slice(src),
                _ => {
                    out[..w - 1].copy_from_slice(&src[1..]);
                    out[w - 1] = 0.0;
                }
            }
        }
    }
}
