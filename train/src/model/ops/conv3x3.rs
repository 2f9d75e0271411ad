//! The ConvBlock's 3x3 convolution (stride 1, padding 1) with kernels and gradients of the
//! project's own on flex and LibTorch.
//!
//! Burn computes a convolution's weight gradient as another convolution with batch and
//! channels swapped: its "input channels" are the batch and its "kernel" is the whole
//! output gradient (128 x 128 and more). flex sends a convolution with at most 4 input and
//! 16 output channels to a direct loop written for tiny kernels, so at batch <= 4 every
//! 16-channel layer's weight gradient ran there: half of a training step. On flex the forward
//! pass and the input gradient are [`super::flex_conv3x3`]'s band-wise im2col + gemm, and the
//! weight gradient is, for each of the nine kernel taps, the output gradient times the input
//! shifted by that tap: gemm calls whatever the batch. On LibTorch, torch's own autograd
//! records the forward convolution and computes all three gradients in one
//! `convolution_backward`.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::ops::{ConvOptions, ModuleOps, PadMode};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::Slice;

#[cfg(feature = "tch")]
use burn::backend::LibTorch;

use super::flex_conv3x3;
use super::layer_grads::{self, LayerGrads, SavedInputs, extension_layer};
use crate::model::Precision;

extension_layer! {
    /// The 3x3 convolution: `x [N, C_in, H, W]`, `weight [C_out, C_in, 3, 3]`,
    /// `bias [C_out]`.
    Conv3x3Backend::conv3x3 for Conv3x3 {
        fallback: conv2d,
        kernel: flex_conv3x3,
        flex_grads: flex_grads,
        torch: |x, w, b| x.conv2d(w, Some(b), [1, 1], [1, 1], [1, 1], 1),
    }
}

fn options() -> ConvOptions<2> {
    ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
}

/// [`flex_conv3x3`] for the input gradient (the convolution of the output gradient with the
/// flipped, transposed kernel), [`weight_grad`] for the weight.
fn flex_grads(saved: SavedInputs<Flex>, grad: FloatTensor<Flex>) -> [Option<FloatTensor<Flex>>; 3] {
    let SavedInputs {
        x,
        weight,
        bias,
        tracked,
    } = saved;
    // Only f32 NCHW tensors take the project's kernels; others (half precision) Burn's.
    let own = flex_conv3x3::supports(&x, &weight);
    let dx = tracked[0].then(|| match own {
        true => flex_conv3x3::conv3x3_input_grad(&grad, &weight),
        false => Flex::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options()),
    });
    let dweight = tracked[1].then(|| weight_grad::<Flex>(x.clone(), grad.clone()));
    let dbias = tracked[2].then(|| Flex::conv2d_bias_backward(x, bias, grad));
    [dx, dweight, dbias]
}

/// `conv` (3x3, stride 1, padding 1) applied to `x`, computing in `precision`: through the
/// extension on flex and LibTorch, through Burn's `conv2d` elsewhere.
pub fn forward(conv: &Conv2d, x: Tensor<4>, precision: Precision) -> Tensor<4> {
    debug_assert!(
        conv.kernel_size == [3, 3]
            && conv.stride == [1, 1]
            && conv.dilation == [1, 1]
            && conv.groups == 1
            && conv.padding == PaddingConfig2d::Explicit(1, 1, 1, 1),
        "conv3x3::forward takes a 3x3, stride-1, padding-1 layer"
    );
    let extended = super::extended(&x.device());
    let x = precision.operand(x);
    let weight = precision.operand(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| precision.operand(b.val()));
    precision.result(match (bias, extended) {
        (Some(bias), true) => dispatch(x, weight, bias),
        (bias, _) => burn::tensor::module::conv2d(x, weight, bias, options()),
    })
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
    /// channels, a non-square image), and an image of more than one band of the flex kernel
    /// with a short last band.
    #[test]
    fn matches_burn_conv2d_and_its_gradients() {
        assert_matches_burn_conv2d(Device::flex().autodiff());
    }

    /// LibTorch's gradients come from its own autograd rather than the generic route.
    #[cfg(feature = "tch")]
    #[test]
    fn matches_burn_conv2d_and_its_gradients_on_libtorch() {
        assert_matches_burn_conv2d(Device::libtorch().autodiff());
    }

    fn assert_matches_burn_conv2d(device: Device) {
        for (n, c_in, c_out, h, w) in [
            (2, 1, 16, 12, 9),
            (5, 16, 16, 8, 8),
            (3, 4, 8, 7, 10),
            (2, 3, 4, 45, 50),
        ] {
            let conv = layer(c_in, c_out, &device);
            let x = Tensor::<4>::random([n, c_in, h, w], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            // A non-uniform upstream gradient, so a transposed or shifted gradient shows.
            let probe =
                Tensor::<4>::random([n, c_out, h, w], Distribution::Normal(0.0, 1.0), &device);

            let ours = forward(&conv, x.clone(), Precision::F32);
            let theirs = conv.forward(x.clone());
            ours.to_data()
                .assert_approx_eq::<f32>(&theirs.to_data(), Tolerance::rel_abs(1e-4, 1e-5));

            let g_ours = (ours * probe.clone()).sum().backward();
            let g_theirs = (theirs * probe).sum().backward();
            let gradient = |t: &Tensor<4>, g| t.grad(g).expect("gradient");
            assert_close(gradient(&x, &g_ours), gradient(&x, &g_theirs));
            let weight = conv.weight.val();
            assert_close(gradient(&weight, &g_ours), gradient(&weight, &g_theirs));
            let bias = conv.bias.as_ref().expect("bias").val();
            let (a, b) = (bias.grad(&g_ours), bias.grad(&g_theirs));
            assert_close(a.expect("bias gradient"), b.expect("bias gradient"));
        }
        // The first layer's input (the image) needs no gradient.
        let conv = layer(1, 4, &device);
        let x = Tensor::<4>::random([2, 1, 6, 5], Distribution::Normal(0.0, 1.0), &device);
        let probe = Tensor::<4>::random([2, 4, 6, 5], Distribution::Normal(0.0, 1.0), &device);
        let g_ours = (forward(&conv, x.clone(), Precision::F32) * probe.clone())
            .sum()
            .backward();
        let g_theirs = (conv.forward(x.clone()) * probe).sum().backward();
        assert!(x.grad(&g_ours).is_none());
        let weight = conv.weight.val();
        assert_close(
            weight.grad(&g_ours).expect("weight gradient"),
            weight.grad(&g_theirs).expect("weight gradient"),
        );
    }

    /// A gradient is a sum of up to thousands of products whose last bits depend on the
    /// summation order (tile sizes, threads), so the absolute tolerance scales with the
    /// reference's root mean square; a wrong tap or a transposed gradient is off by about the
    /// root mean square itself.
    fn assert_close<const D: usize>(ours: Tensor<D>, theirs: Tensor<D>) {
        let reference = theirs.to_data();
        let values = reference.to_vec::<f32>().expect("f32 gradient");
        let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
        ours.to_data()
            .assert_approx_eq::<f32>(&reference, Tolerance::rel_abs(1e-4, 1e-4 * rms.max(1.0)));
    }

    /// Without autodiff (inference, validation) the extension is the plain convolution.
    #[test]
    fn inference_matches_burn_conv2d() {
        let device = Device::flex();
        let conv = layer(3, 5, &device);
        let x = Tensor::<4>::random([2, 3, 6, 7], Distribution::Normal(0.0, 1.0), &device);
        forward(&conv, x.clone(), Precision::F32)
            .to_data()
            .assert_approx_eq::<f32>(&conv.forward(x).to_data(), Tolerance::rel_abs(1e-5, 1e-6));
    }
}
