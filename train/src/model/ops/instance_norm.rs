//! Instance normalisation without affine parameters, with its gradient in closed form.
//!
//! Burn's `InstanceNorm` is group normalisation spelled in tensor ops (mean, subtract,
//! square, mean, add, square root, divide), and autodiff differentiates each of them,
//! broadcasts and reductions included. Normalising `x` over its pixels to `y = (x - mean) *
//! rstd` has the gradient `dx = rstd * (g - mean(g) - y * mean(g * y))`, a handful of passes
//! over the image.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::InstanceNorm;
use burn::prelude::*;

#[cfg(feature = "tch")]
use burn::backend::LibTorch;

#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait InstanceNormBackend: Backend {
    /// `x [N, C, H, W]` normalised per image and channel.
    fn instance_norm_plain(x: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        normalise::<Self>(x, epsilon).0
    }
}

impl InstanceNormBackend for Flex {}
#[cfg(feature = "tch")]
impl InstanceNormBackend for LibTorch {}

/// `norm` (no affine parameters) applied to `x`: through the extension on flex and LibTorch,
/// `InstanceNorm::forward` elsewhere.
pub fn forward(norm: &InstanceNorm, x: Tensor<4>) -> Tensor<4> {
    if norm.affine || !super::extended(&x.device()) {
        return norm.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as InstanceNormBackend>::instance_norm_plain(
        x.into_dispatch(),
        norm.epsilon,
    ))
}

/// `[N, C, pixels]`: the view in which each image's channel is one row to normalise.
fn rows(shape: &burn::tensor::Shape) -> [usize; 3] {
    let [n, c] = [shape[0], shape[1]];
    [n, c, shape.num_elements() / (n * c)]
}

/// `(y, rstd)`: the normalised image and `1 / sqrt(var + epsilon)` as `[N, C, 1]`.
fn normalise<B: Backend>(x: FloatTensor<B>, epsilon: f64) -> (FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let x = B::float_reshape(x, rows(&shape).into());
    let centred = B::float_sub(x.clone(), B::float_mean_dim(x, 2));
    let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), 2);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let y = B::float_reshape(B::float_mul(centred, rstd.clone()), shape);
    (y, rstd)
}

impl<B: Backend, C: CheckpointStrategy> InstanceNormBackend for Autodiff<B, C> {
    fn instance_norm_plain(x: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct InstanceNormBackward;

        impl<B: Backend> Backward<B, 1> for InstanceNormBackward {
            /// The output and `rstd`.
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (y, rstd) = ops.state;
                if let Some(node) = node {
                    let shape = y.shape();
                    let flat = rows(&shape);
                    let g = B::float_reshape(grad, flat.into());
                    let y = B::float_reshape(y, flat.into());
                    let mean_g = B::float_mean_dim(g.clone(), 2);
                    let mean_gy = B::float_mean_dim(B::float_mul(g.clone(), y.clone()), 2);
                    let inner = B::float_sub(B::float_sub(g, mean_g), B::float_mul(y, mean_gy));
                    let dx = B::float_reshape(B::float_mul(inner, rstd), shape);
                    grads.register::<B>(node.id, dx);
                }
            }
        }

        match InstanceNormBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, rstd) = normalise::<B>(x.into_primitive(), epsilon);
                prep.finish((y.clone(), rstd), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(normalise::<B>(x.into_primitive(), epsilon).0),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::super::test_util::assert_same_output_and_gradient;
    use super::*;
    use crate::model::conv_block::instance_norm;

    #[test]
    fn matches_burn_instance_norm_and_its_gradient() {
        assert_matches_burn_instance_norm(Device::flex().autodiff());
    }

    #[cfg(feature = "tch")]
    #[test]
    fn matches_burn_instance_norm_and_its_gradient_on_libtorch() {
        assert_matches_burn_instance_norm(Device::libtorch().autodiff());
    }

    fn assert_matches_burn_instance_norm(device: Device) {
        let norm = instance_norm(3, &device);
        // An offset and scale per channel, so the statistics matter.
        let x =
            Tensor::<4>::random([2, 3, 6, 5], Distribution::Normal(0.0, 1.0), &device) * 3.0 + 1.5;
        assert_same_output_and_gradient(
            x,
            |x| forward(&norm, x),
            |x| norm.forward(x),
            Tolerance::rel_abs(1e-4, 1e-5),
        );
    }
}
