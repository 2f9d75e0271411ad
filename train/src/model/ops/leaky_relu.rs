//! LeakyReLU with a one-pass forward and a three-pass gradient.
//!
//! Burn's autodiff has no LeakyReLU of its own: it records the generic decomposition
//! (compare, scale, select), so a training step ran the select and two masked fills of its
//! gradient for every activation, 12% of a flex step. Here the forward pass is the backend's
//! fused LeakyReLU and the gradient is `grad` where the output is non-negative, `slope *
//! grad` elsewhere.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension,
    get_or_init_device_settings,
};
use burn::prelude::*;

#[cfg(feature = "tch")]
use burn::backend::LibTorch;

#[backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait LeakyReluBackend: Backend {
    fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        Self::leaky_relu(x, slope.into())
    }
}

impl LeakyReluBackend for Flex {}
#[cfg(feature = "tch")]
impl LeakyReluBackend for LibTorch {}

/// `max(x, slope x)` for `0 <= slope <= 1`: through the extension on flex and LibTorch,
/// Burn's `leaky_relu` elsewhere.
pub fn forward<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    if super::extended(&x.device()) {
        Tensor::from_dispatch(<Dispatch as LeakyReluBackend>::leaky_relu_fused(
            x.into_dispatch(),
            slope,
        ))
    } else {
        burn::tensor::activation::leaky_relu(x, slope)
    }
}

impl<B: Backend, C: CheckpointStrategy> LeakyReluBackend for Autodiff<B, C> {
    fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LeakyReluBackward;

        impl<B: Backend> Backward<B, 1> for LeakyReluBackward {
            /// The output (its sign is the input's) and the slope.
            type State = (FloatTensor<B>, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (output, slope) = ops.state;
                if let Some(node) = node {
                    let bool_dtype = get_or_init_device_settings::<B>(&output.device()).bool_dtype;
                    let negative = B::float_lower_elem(output, 0f32.into(), bool_dtype);
                    let scaled = B::float_mul_scalar(grad.clone(), slope.into());
                    grads.register::<B>(node.id, B::float_mask_where(grad, negative, scaled));
                }
            }
        }

        match LeakyReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::leaky_relu(x.into_primitive(), slope.into());
                prep.finish((y.clone(), slope), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::leaky_relu(x.into_primitive(), slope.into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::super::test_util::assert_same_output_and_gradient;
    use super::*;

    #[test]
    fn matches_burn_leaky_relu_and_its_gradient() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device);
        // Both slopes really occur.
        let negatives: i64 = x.clone().lower_elem(0.0).int().sum().into_scalar();
        assert!(negatives > 0 && (negatives as usize) < 2 * 3 * 5 * 7);
        assert_same_output_and_gradient(
            x,
            |x| forward(x, 0.2),
            |x| burn::tensor::activation::leaky_relu(x, 0.2),
            Tolerance::rel_abs(1e-6, 1e-7),
        );
    }
}
