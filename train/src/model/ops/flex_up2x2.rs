//! The decoder's up-sampling (a 2x2, stride-2 transposed convolution) on flex's CPU tensors,
//! as one gemm per image and its gradients as two more.
//!
//! With stride equal to kernel size every output pixel comes from exactly one input pixel and
//! one tap, so the layer is a 1x1 convolution to `4 C_out` channels (`(o, dy, dx)`, the
//! weight's own memory order) followed by a pixel shuffle. flex runs it, and Burn's generic
//! gradients run its weight gradient, as general strided convolutions: 15% of a 32-channel
//! training step for 5% of its arithmetic.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use super::flex_tensor::{dims4, f32s};
use super::sgemm::{Strided, matmul};

/// Whether these tensors take the kernels here: f32 NCHW input, `[C_in, C_out, 2, 2]` weight.
pub fn supports(x: &FlexTensor, weight: &FlexTensor) -> bool {
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && xs.num_dims() == 4
        && ws.num_dims() == 4
        && ws[0] == xs[1]
        && ws[2] == 2
        && ws[3] == 2
        // Empty tensors (a zero-sized band or chunk) are left to Burn's op.
        && xs.num_elements() > 0
        && ws.num_elements() > 0
}

/// `y[n, o, 2y + dy, 2x + dx] = bias[o] + sum over i of weight[i, o, dy, dx] x[n, i, y, x]`.
pub fn up2x2(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let bias = bias.map(FlexTensor::to_contiguous);
    let [n, c_in, h, w] = dims4(&x);
    let c_out = weight.layout().shape()[1];
    let (x, weight) = (f32s(&x), f32s(&weight));
    let bias = bias.as_ref().map(f32s);
    let plane = h * w;
    let mut output = vec![0.0f32; n * c_out * 4 * plane];
    output
        .par_chunks_mut(c_out * 4 * plane)
        .enumerate()
        .for_each_init(Vec::<f32>::new, |taps, (image, out)| {
            // taps[(o, dy, dx), p] = sum over i of weight[i, (o, dy, dx)] x[i, p]
            taps.resize(c_out * 4 * plane, 0.0);
            // SAFETY: `weight` is `[c_in, 4 c_out]`, the image is `[c_in, plane]`, `taps` is
            // `[4 c_out, plane]`, all row-major and inside their slices.
            unsafe {
                matmul(
                    [c_out * 4, plane, c_in],
                    (taps.as_mut_ptr(), plane),
                    false,
                    Strided::transposed(weight.as_ptr(), c_out * 4),
                    Strided::rows(x[image * c_in * plane..].as_ptr(), plane),
                );
            }
            for (o, out) in out.chunks_exact_mut(4 * plane).enumerate() {
                let b = bias.map_or(0.0, |b| b[o]);
                for tap in 0..4 {
                    let (dy, dx) = (tap / 2, tap % 2);
                    let src = &taps[(o * 4 + tap) * plane..][..plane];
                    for (y, row) in src.chunks_exact(w).enumerate() {
                        let dst = &mut out[(2 * y + dy) * 2 * w..][..2 * w];
                        for (x, &v) in row.iter().enumerate() {
                            dst[2 * x + dx] = v + b;
                        }
                    }
                }
            }
        });
    FlexTensor::from_data(TensorData::new(
        output,
        Shape::new([n, c_out, 2 * h, 2 * w]),
    ))
}

/// `[dx, dweight, dbias]` of [`up2x2`] for the output gradient `grad`, each only where asked.
pub fn up2x2_grads(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    wanted: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let grad = grad.to_contiguous();
    let [n, c_in, h, w] = dims4(&x);
    let c_out = weight.layout().shape()[1];
    let (xs, ws, gs) = (f32s(&x), f32s(&weight), f32s(&grad));
    let plane = h * w;
    let q = c_out * 4;
    // Each image's input gradient is written straight into its part of the whole one.
    let mut dx = vec![0.0f32; if wanted[0] { n * c_in * plane } else { 0 }];
    let dx_parts: Vec<&mut [f32]> = match wanted[0] {
        true => dx.chunks_exact_mut(c_in * plane).collect(),
        false => (0..n).map(|_| Default::default()).collect(),
    };
    let per_image: Vec<ImageGrads> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(image, dx)| {
            let taps = unshuffle(&gs[image * q * plane..][..q * plane], c_out, h, w);
            if wanted[0] {
                // SAFETY: `weight` is `[c_in, q]`, `taps` `[q, plane]`, `dx` `[c_in, plane]`.
                unsafe {
                    matmul(
                        [c_in, plane, q],
                        (dx.as_mut_ptr(), plane),
                        false,
                        Strided::rows(ws.as_ptr(), q),
                        Strided::rows(taps.as_ptr(), plane),
                    );
                }
            }
            let mut dw = Vec::new();
            if wanted[1] {
                dw = vec![0.0f32; c_in * q];
                // dw[i, q] = sum over p of x[i, p] taps[q, p]
                // SAFETY: the image is `[c_in, plane]`, `taps` read transposed `[plane, q]`,
                // `dw` `[c_in, q]`.
                unsafe {
                    matmul(
                        [c_in, q, plane],
                        (dw.as_mut_ptr(), q),
                        false,
                        Strided::rows(xs[image * c_in * plane..].as_ptr(), plane),
                        Strided::transposed(taps.as_ptr(), plane),
                    );
                }
            }
            let db = if wanted[2] {
                taps.chunks_exact(4 * plane)
                    .map(|channel| channel.iter().sum())
                    .collect()
            } else {
                Vec::new()
            };
            ImageGrads { dw, db }
        })
        .collect();

    let dx =
        wanted[0].then(|| FlexTensor::from_data(TensorData::new(dx, Shape::new([n, c_in, h, w]))));
    let summed = |part: fn(&ImageGrads) -> &[f32], len: usize| {
        let mut total = vec![0.0f32; len];
        for image in &per_image {
            total.iter_mut().zip(part(image)).for_each(|(t, v)| *t += v);
        }
        total
    };
    let dweight = wanted[1].then(|| {
        let dw = summed(|g| &g.dw, c_in * q);
        FlexTensor::from_data(TensorData::new(dw, Shape::new([c_in, c_out, 2, 2])))
    });
    let dbias = wanted[2].then(|| {
        let db = summed(|g| &g.db, c_out);
        FlexTensor::from_data(TensorData::new(db, Shape::new([c_out])))
    });
    [dx, dweight, dbias]
}

/// One image's weight and bias gradients, to sum over the batch; empty where not wanted.
struct ImageGrads {
    dw: Vec<f32>,
    db: Vec<f32>,
}

/// `taps[(o, dy, dx), y w + x] = grad[o, 2y + dy, 2x + dx]` for one image's `[c_out, 2h, 2w]`.
fn unshuffle(grad: &[f32], c_out: usize, h: usize, w: usize) -> Vec<f32> {
    let plane = h * w;
    let mut taps = vec![0.0f32; c_out * 4 * plane];
    for (row, dst) in taps.chunks_exact_mut(plane).enumerate() {
        let (o, dy, dx) = (row / 4, row % 4 / 2, row % 2);
        let channel = &grad[o * 4 * plane..][..4 * plane];
        for (y, out) in dst.chunks_exact_mut(w).enumerate() {
            let src = &channel[(2 * y + dy) * 2 * w..][..2 * w];
            for (x, v) in out.iter_mut().enumerate() {
                *v = src[2 * x + dx];
            }
        }
    }
    taps
}
