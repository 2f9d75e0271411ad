//! Four layers of the network as Burn backend extensions with gradients (and, for the two
//! convolutions, kernels) of the project's own, for the CPU backends where Burn's generic ones are the slow part of a
//! training step (see BENCHMARKS.md, "Where the flex step goes"): on flex, the 3x3
//! convolution and the 2x2 up-sampling run as im2col / gemm kernels written for their one
//! shape (`flex_conv3x3`, `flex_up2x2`); on LibTorch torch's own autograd records them
//! (`torch_graph`). Parameters and records are the usual `Conv2d`s and `ConvTranspose2d`s, so
//! checkpoints and the ONNX export are the same whichever route trained them. Devices of
//! other backends (wgpu, CUDA, ndarray) take Burn's ops unchanged.

// Burn marks its LibTorch backend deprecated; the `tch` build implements these for it on
// purpose (it is the fastest CPU route measured here and the CUDA one that builds).
#[allow(deprecated)]
pub mod conv3x3;
mod flex_conv3x3;
mod flex_tensor;
mod flex_up2x2;
#[allow(deprecated)]
pub mod instance_norm;
mod layer_grads;
#[allow(deprecated)]
pub mod leaky_relu;
mod sgemm;
#[cfg(feature = "tch")]
#[allow(deprecated)]
mod torch_graph;
#[allow(deprecated)]
pub mod up2x2;

use burn::backend::DispatchDevice;
use burn::prelude::*;

/// Whether `device` (with or without autodiff) belongs to a backend the extensions are
/// written for.
fn extended(device: &Device) -> bool {
    match device.clone().inner().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "tch")]
        DispatchDevice::LibTorch(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod test_util {
    use burn::prelude::*;
    use burn::tensor::{Distribution, Tolerance};

    /// `ours(x)` against `theirs(x)` and the gradient each gives `x` under a random upstream
    /// gradient (a uniform one would hide a transposed or shifted gradient).
    pub fn assert_same_output_and_gradient(
        x: Tensor<4>,
        ours: impl Fn(Tensor<4>) -> Tensor<4>,
        theirs: impl Fn(Tensor<4>) -> Tensor<4>,
        tolerance: Tolerance<f32>,
    ) {
        let x = x.require_grad();
        let (a, b) = (ours(x.clone()), theirs(x.clone()));
        let probe = Tensor::<4>::random(a.dims(), Distribution::Normal(0.0, 1.0), &x.device());
        a.to_data().assert_approx_eq::<f32>(&b.to_data(), tolerance);
        let gradient = |y: Tensor<4>| x.grad(&(y * probe.clone()).sum().backward());
        let (ga, gb) = (gradient(a), gradient(b));
        ga.expect("gradient")
            .to_data()
            .assert_approx_eq::<f32>(&gb.expect("gradient").to_data(), tolerance);
    }
}
