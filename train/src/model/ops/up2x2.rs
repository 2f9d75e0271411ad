//! The decoder's up-sampling, a 2x2 stride-2 transposed convolution, with kernels and
//! gradients of the project's own: on flex one gemm per image each way
//! ([`super::flex_up2x2`]); on LibTorch torch's own autograd records the layer, so its three
//! gradients are one `convolution_backward`. Burn's generic route computes the weight
//! gradient as a strided convolution with the whole output gradient as its kernel.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::ops::{ConvTransposeOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::conv::ConvTranspose2d;
use burn::prelude::*;

#[cfg(feature = "tch")]
use burn::backend::LibTorch;

use super::flex_up2x2;
use super::layer_grads::{self, LayerGrads, SavedInputs};
use crate::model::Precision;

#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait Up2x2Backend: Backend {
    /// `x [N, C_in, H, W]`, `weight [C_in, C_out, 2, 2]`, `bias [C_out]`; the output is
    /// `[N, C_out, 2H, 2W]`.
    fn up2x2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::conv_transpose2d(x, weight, Some(bias), options())
    }
}

impl Up2x2Backend for Flex {
    fn up2x2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if flex_up2x2::supports(&x, &weight) {
            flex_up2x2::up2x2(&x, &weight, Some(&bias))
        } else {
            Self::conv_transpose2d(x, weight, Some(bias), options())
        }
    }
}
#[cfg(feature = "tch")]
impl Up2x2Backend for LibTorch {}

impl<B: Backend, C: CheckpointStrategy> Up2x2Backend for Autodiff<B, C>
where
    Up2x2: LayerGrads<B>,
{
    fn up2x2(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        layer_grads::forward::<Up2x2, B, C>(x, weight, bias)
    }
}

fn options() -> ConvTransposeOptions<2> {
    ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1)
}

/// The layer, for [`layer_grads`]: a tracked `up2x2` and its gradients, each backend its
/// fastest way.
pub struct Up2x2;

impl LayerGrads<Flex> for Up2x2 {
    type Saved = SavedInputs<Flex>;

    fn output(
        x: FloatTensor<Flex>,
        weight: FloatTensor<Flex>,
        bias: FloatTensor<Flex>,
    ) -> FloatTensor<Flex> {
        Flex::up2x2(x, weight, bias)
    }

    fn tracked(
        x: FloatTensor<Flex>,
        weight: FloatTensor<Flex>,
        bias: FloatTensor<Flex>,
        tracked: [bool; 3],
    ) -> (FloatTensor<Flex>, Self::Saved) {
        SavedInputs::run(Flex::up2x2, x, weight, bias, tracked)
    }

    fn grads(saved: Self::Saved, grad: FloatTensor<Flex>) -> [Option<FloatTensor<Flex>>; 3] {
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
            tracked[0].then(|| {
                Flex::conv_transpose2d_x_backward(weight.clone(), grad.clone(), options())
            }),
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
}

#[cfg(feature = "tch")]
impl LayerGrads<LibTorch> for Up2x2 {
    type Saved = super::torch_graph::TorchGraph;

    fn output(
        x: FloatTensor<LibTorch>,
        weight: FloatTensor<LibTorch>,
        bias: FloatTensor<LibTorch>,
    ) -> FloatTensor<LibTorch> {
        LibTorch::up2x2(x, weight, bias)
    }

    fn tracked(
        x: FloatTensor<LibTorch>,
        weight: FloatTensor<LibTorch>,
        bias: FloatTensor<LibTorch>,
        tracked: [bool; 3],
    ) -> (FloatTensor<LibTorch>, Self::Saved) {
        super::torch_graph::TorchGraph::record([x, weight, bias], tracked, |[x, w, b]| {
            x.conv_transpose2d(w, Some(b), [2, 2], [0, 0], [0, 0], 1, [1, 1])
        })
    }

    fn grads(
        saved: Self::Saved,
        grad: FloatTensor<LibTorch>,
    ) -> [Option<FloatTensor<LibTorch>>; 3] {
        saved.gradients(&grad)
    }
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
        (Some(bias), true) => Tensor::from_dispatch(<Dispatch as Up2x2Backend>::up2x2(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        )),
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
