//! The ConvBlock's 3x3 convolution (stride 1, padding 1) whose weight gradient is nine
//! matrix products.
//!
//! Burn computes a convolution's weight gradient as another convolution with batch and
//! channels swapped: its "input channels" are the batch and its "kernel" is the whole
//! output gradient (128 x 128 and more). flex sends a convolution with at most 4 input and
//! 16 output channels to a direct loop written for tiny kernels, so at batch <= 4 every
//! 16-channel layer's weight gradient ran there: half of a training step. LibTorch gets the
//! same swapped convolution with a huge kernel. Here the forward pass and the input gradient
//! stay the backend's own convolutions, and the weight gradient is, for each of the nine
//! kernel taps, the output gradient times the input shifted by that tap: gemm calls whatever
//! the batch.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::{ConvOptions, PadMode};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::Slice;

#[cfg(feature = "tch")]
use burn::backend::LibTorch;

#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait Conv3x3Backend: Backend {
    /// `x [N, C_in, H, W]`, `weight [C_out, C_in, 3, 3]`, `bias [C_out]`.
    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), options())
    }
}

impl Conv3x3Backend for Flex {}
#[cfg(feature = "tch")]
impl Conv3x3Backend for LibTorch {}

fn options() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
}

/// `conv` (3x3, stride 1, padding 1, with bias) applied to `x`: through the extension on
/// flex and LibTorch, through `Conv2d::forward` elsewhere.
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match (&conv.bias, super::extended(&x.device())) {
        (Some(bias), true) => Tensor::from_dispatch(<Dispatch as Conv3x3Backend>::conv3x3(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            bias.val().into_dispatch(),
        )),
        _ => conv.forward(x),
    }
}

impl<B: Backend, C: CheckpointStrategy> Conv3x3Backend for Autodiff<B, C> {
    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Conv3x3Backward;

        impl<B: Backend> Backward<B, 3> for Conv3x3Backward {
            type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, bias) = ops.state;
                if let Some(node) = node_x {
                    // The backend's transposed convolution; nine strided products summed, as
                    // for the weight, measured no faster on flex.
                    let dx =
                        B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options());
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_weight {
                    grads.register::<B>(node.id, weight_grad::<B>(x.clone(), grad.clone()));
                }
                if let Some(node) = node_bias {
                    grads.register::<B>(node.id, B::conv2d_bias_backward(x, bias, grad));
                }
            }
        }

        match Conv3x3Backward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, weight, bias) = (
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                let y = B::conv2d(x.clone(), weight.clone(), Some(bias.clone()), options());
                prep.finish((x, weight, bias), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                Some(bias.into_primitive()),
                options(),
            )),
        }
    }
}

/// `dW[o, i, dy, dx] = sum over n, y, x of dY[n, o, y, x] * x_pad[n, i, y + dy, x + dx]`, one
/// batched `[C_out, L] x [L, C_in]` product per tap without copying a shifted input: on a
/// row-major image `W + 2` wide, shifting by a tap is moving the start of the flattened
/// pixels by `dy (W + 2) + dx`, so each tap is a strided view of the one padded input. The
/// output gradient gets the two extra columns as zeros, which cancels the pixels that wrap
/// from one row into the next; the padded input gets a second zero row at the bottom so the
/// last tap's view stays inside it.
fn weight_grad<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let [n, c_in, h, w] = dims4::<B>(&x);
    let c_out = dims4::<B>(&grad)[1];
    let row = w + 2;
    let padded = B::float_pad(x, &[(0, 0), (0, 0), (1, 2), (1, 1)], PadMode::Constant(0.0));
    let padded = B::float_reshape(padded, [n, c_in, (h + 3) * row].into());
    let grad = B::float_pad(
        grad,
        &[(0, 0), (0, 0), (0, 0), (0, 2)],
        PadMode::Constant(0.0),
    );
    let grad = B::float_reshape(grad, [n, c_out, h * row].into());
    let taps: Vec<FloatTensor<B>> = (0..3)
        .flat_map(|dy| (0..3).map(move |dx| dy * row + dx))
        .map(|start| {
            let window = [
                Slice::from(0..n),
                Slice::from(0..c_in),
                Slice::from(start..start + h * row),
            ];
            let shifted = B::float_slice(padded.clone(), &window);
            // [N, C_out, L] x [N, L, C_in] summed over N: [1, C_out, C_in].
            let product = B::float_matmul(grad.clone(), B::float_swap_dims(shifted, 1, 2));
            B::float_sum_dim(product, 0)
        })
        .collect();
    // [9, C_out, C_in] -> [C_out, C_in, 9] -> [C_out, C_in, 3, 3]
    let stacked = B::float_permute(B::float_cat(taps, 0), &[1, 2, 0]);
    B::float_reshape(stacked, [c_out, c_in, 3, 3].into())
}

fn dims4<B: Backend>(t: &FloatTensor<B>) -> [usize; 4] {
    let shape = t.shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

#[cfg(test)]
mod tests {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    fn layer(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
        Conv2dConfig::new([c_in, c_out], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device)
    }

    /// Output, input gradient and both parameter gradients against Burn's own convolution,
    /// at shapes on both sides of flex's small-channel cliff (batch 2 and 5, 1 and 16
    /// channels, a non-square image).
    #[test]
    fn matches_burn_conv2d_and_its_gradients() {
        let device = Device::flex().autodiff();
        for (n, c_in, c_out, h, w) in [(2, 1, 16, 12, 9), (5, 16, 16, 8, 8), (3, 4, 8, 7, 10)] {
            let conv = layer(c_in, c_out, &device);
            let x = Tensor::<4>::random([n, c_in, h, w], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            // A non-uniform upstream gradient, so a transposed or shifted gradient shows.
            let probe =
                Tensor::<4>::random([n, c_out, h, w], Distribution::Normal(0.0, 1.0), &device);

            let ours = forward(&conv, x.clone());
            let theirs = conv.forward(x.clone());
            ours.to_data()
                .assert_approx_eq::<f32>(&theirs.to_data(), Tolerance::rel_abs(1e-4, 1e-5));

            let g_ours = (ours * probe.clone()).sum().backward();
            let g_theirs = (theirs * probe).sum().backward();
            let bias = conv.bias.as_ref().expect("bias").val();
            let pairs = [
                (x.grad(&g_ours), x.grad(&g_theirs)),
                (
                    conv.weight.val().grad(&g_ours),
                    conv.weight.val().grad(&g_theirs),
                ),
            ];
            for (a, b) in pairs {
                a.expect("gradient").to_data().assert_approx_eq::<f32>(
                    &b.expect("gradient").to_data(),
                    Tolerance::rel_abs(1e-4, 1e-4),
                );
            }
            let (a, b) = (bias.grad(&g_ours), bias.grad(&g_theirs));
            a.expect("bias gradient").to_data().assert_approx_eq::<f32>(
                &b.expect("bias gradient").to_data(),
                Tolerance::rel_abs(1e-4, 1e-4),
            );
        }
    }

    /// Without autodiff (inference, validation) the extension is the plain convolution.
    #[test]
    fn inference_matches_burn_conv2d() {
        let device = Device::flex();
        let conv = layer(3, 5, &device);
        let x = Tensor::<4>::random([2, 3, 6, 7], Distribution::Normal(0.0, 1.0), &device);
        forward(&conv, x.clone())
            .to_data()
            .assert_approx_eq::<f32>(&conv.forward(x).to_data(), Tolerance::rel_abs(1e-5, 1e-6));
    }
}
