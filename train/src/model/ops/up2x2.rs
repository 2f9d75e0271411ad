//! The decoder's up-sampling, a 2x2 stride-2 transposed convolution, with kernels and
//! gradients of the project's own: on flex one gemm per image each way
//! ([`super::flex_up2x2`]); on LibTorch torch's own autograd records the layer, so its three
//! gradients are one `convolution_backward`. Burn's generic route computes the weight
//! gradient as a strided convolution with the whole output gradient as its kernel.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::ops::{ConvTransposeOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex};
use burn::nn::conv::ConvTranspose2d;
use burn::prelude::*;

#[cfg(feature = "tch")]
use burn::backend::LibTorch;

use super::flex_up2x2;
use super::layer_grads::{self, LayerGrads, SavedInputs, extension_layer};
use crate::model::Precision;

extension_layer! {
    /// The 2x2 stride-2 up-sampling: `x [N, C_in, H, W]`, `weight [C_in, C_out, 2, 2]`,
    /// `bias [C_out]`; the output is `[N, C_out, 2H, 2W]`.
    Up2x2Backend::up2x2 for Up2x2 {
        fallback: conv_transpose2d,
        kernel: flex_up2x2,
        flex_grads: flex_grads,
        torch: |x, w, b| x.conv_transpose2d(w, Some(b), [2, 2], [0, 0], [0, 0], 1, [1, 1]),
    }
}

fn options() -> ConvTransposeOptions<2> {
    ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1)
}

/// [`flex_up2x2`]'s gradients, one gemm per image each way; Burn's in half precision.
fn flex_grads(saved: SavedInputs<Flex>, grad: FloatTensor<Flex>) -> [Option<FloatTensor<Flex>>; 3] {
    let SavedInputs {
        x,
        weight,
        bias,
        tracked,
    } = saved;
    if flex_up2x2::supports(&x, &weight) {
        return flex_up2x2::up2x2_grads(&x, &weight, &grad, tracked);
    }
    // Half precision: Burn's own gradients of the transposed convolution.
    [
        tracked[0]
            .then(|| Flex::conv_transpose2d_x_backward(weight.clone(), grad.clone(), options())),
        tracked[1].then(|| {
            Flex::conv_transpose2d_weight_backward(
                x.clone(),
                weight.clone(),
                grad.clone(),
                options(),
            )
        }),
        tracked[2].then(|| Flex::conv_transpose2d_bias_backward(x, bias, grad)),
    ]
}

/// `up` (2x2, stride 2, no padding) applied to `x`, computing in `precision`: through the
/// extension on flex and LibTorch, through Burn's `conv_transpose2d` elsewhere.
pub fn forward(up: &ConvTranspose2d, x: Tensor<4>, precision: Precision) -> Tensor<4> {
    debug_assert!(
        up.kernel_size == [2, 2]
            && up.stride == [2, 2]
            && up.dilation == [1, 1]
            && up.groups == 1
            && up.padding == [0, 0]
            && up.padding_out == [0, 0],
        "up2x2::forward takes a 2x2, stride-2 transposed convolution without padding"
    );
    let extended = super::extended(&x.device());
    let x = precision.operand(x);
    let weight = precision.operand(up.weight.val());
    let bias = up.bias.as_ref().map(|b| precision.operand(b.val()));
    precision.result(match (bias, extended) {
        (Some(bias), true) => dispatch(x, weight, bias),
        (bias, _) => burn::tensor::module::conv_transpose2d(x, weight, bias, options()),
    })
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::ConvTranspose2dConfig;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    fn layer(c_in: usize, c_out: usize, device: &Device) -> ConvTranspose2d {
        ConvTranspose2dConfig::new([c_in, c_out], [2, 2])
            .with_stride([2, 2])
            .init(device)
    }

    /// Output and all three gradients against Burn's own transposed convolution, a
    /// non-square image and one input that needs no gradient.
    #[test]
    fn matches_burn_conv_transpose2d_and_its_gradients() {
        assert_matches_burn(Device::flex().autodiff());
    }

    #[cfg(feature = "tch")]
    #[test]
    fn matches_burn_conv_transpose2d_and_its_gradients_on_libtorch() {
        assert_matches_burn(Device::libtorch().autodiff());
    }

    fn assert_matches_burn(device: Device) {
        for (n, c_in, c_out, h, w) in [(2, 8, 4, 5, 7), (3, 1, 3, 4, 4), (1, 16, 8, 9, 6)] {
            let up = layer(c_in, c_out, &device);
            let x = Tensor::<4>::random([n, c_in, h, w], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let probe = Tensor::<4>::random(
                [n, c_out, 2 * h, 2 * w],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let ours = forward(&up, x.clone(), Precision::F32);
            let theirs = up.forward(x.clone());
            ours.to_data()
                .assert_approx_eq::<f32>(&theirs.to_data(), Tolerance::rel_abs(1e-4, 1e-5));
            let g_ours = (ours * probe.clone()).sum().backward();
            let g_theirs = (theirs * probe).sum().backward();
            let weight = up.weight.val();
            let bias = up.bias.as_ref().expect("bias").val();
            let close = |a: TensorData, b: TensorData| {
                a.assert_approx_eq::<f32>(&b, Tolerance::rel_abs(1e-4, 1e-4))
            };
            close(
                x.grad(&g_ours).expect("dx").to_data(),
                x.grad(&g_theirs).expect("dx").to_data(),
            );
            close(
                weight.grad(&g_ours).expect("dw").to_data(),
                weight.grad(&g_theirs).expect("dw").to_data(),
            );
            close(
                bias.grad(&g_ours).expect("db").to_data(),
                bias.grad(&g_theirs).expect("db").to_data(),
            );
        }
        // An input that needs no gradient still gives the parameters theirs.
        let up = layer(3, 2, &device);
        let x = Tensor::<4>::random([2, 3, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let g = forward(&up, x.clone(), Precision::F32).sum().backward();
        assert!(x.grad(&g).is_none());
        assert!(up.weight.val().grad(&g).is_some());
    }

    /// Without autodiff (inference, validation) the extension is the plain layer.
    #[test]
    fn inference_matches_burn_conv_transpose2d() {
        let device = Device::flex();
        let up = layer(4, 3, &device);
        let x = Tensor::<4>::random([2, 4, 3, 5], Distribution::Normal(0.0, 1.0), &device);
        forward(&up, x.clone(), Precision::F32)
            .to_data()
            .assert_approx_eq::<f32>(&up.forward(x).to_data(), Tolerance::rel_abs(1e-5, 1e-6));
    }
}
