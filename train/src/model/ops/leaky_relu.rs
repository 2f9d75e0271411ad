//! LeakyReLU with a one-pass forward and a one-pass gradient.
//!
//! Burn's autodiff has no LeakyReLU of its own: it records the generic decomposition
//! (compare, scale, select), so a training step ran the select and two masked fills of its
//! gradient for every activation, 12% of a flex step. Here both directions are one
//! elementwise pass: the gradient is `grad` where the output is non-negative, `slope *
//! grad` elsewhere.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
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
impl LeakyReluBackend for LibTorch {
    fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        <Self as LeakyReluKernels>::leaky_relu_forward(x, slope)
    }
}

/// LeakyReLU and its gradient, each backend its fastest way.
pub trait LeakyReluKernels: Backend {
    fn leaky_relu_forward(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        Self::leaky_relu(x, slope.into())
    }

    /// `grad` where `output > 0`, `slope * grad` where `output < 0` (at exactly 0 flex
    /// takes `grad` and torch `slope * grad`: both are subgradients).
    fn leaky_relu_grad(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        slope: f64,
    ) -> FloatTensor<Self>;
}

/// One pass through flex's own elementwise kernel (a compare, a scale and a select were 5%
/// of a flex C32 step).
impl LeakyReluKernels for Flex {
    fn leaky_relu_grad(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        slope: f64,
    ) -> FloatTensor<Self> {
        let slope32 = slope as f32;
        burn::backend::flex::ops::binary::binary_op(
            output,
            grad,
            move |y: f32, g| if y < 0.0 { slope32 * g } else { g },
            move |y: f64, g| if y < 0.0 { slope * g } else { g },
            None,
        )
    }
}

/// LibTorch's fused kernels. Burn's LibTorch backend has no LeakyReLU of its own: it ran the
/// generic compare, scale and select both ways, 13% of a LibTorch step (torch's `where`
/// kernel is not vectorised).
#[cfg(feature = "tch")]
impl LeakyReluKernels for LibTorch {
    /// tch offers torch's LeakyReLU with its default slope only; its backward kernel,
    /// `self > 0 ? grad : slope * grad`, given `x` as both `self` and `grad` is LeakyReLU
    /// with any slope in one pass.
    fn leaky_relu_forward(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        let y = x.tensor.leaky_relu_backward(&x.tensor, slope, false);
        burn::backend::libtorch::TchTensor::new(y)
    }

    fn leaky_relu_grad(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        slope: f64,
    ) -> FloatTensor<Self> {
        let dx = output.tensor.leaky_relu_backward(&grad.tensor, slope, true);
        burn::backend::libtorch::TchTensor::new(dx)
    }
}

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

impl<B: LeakyReluKernels, C: CheckpointStrategy> LeakyReluBackend for Autodiff<B, C> {
    fn leaky_relu_fused(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LeakyReluBackward;

        impl<B: LeakyReluKernels> Backward<B, 1> for LeakyReluBackward {
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
                    grads.register::<B>(node.id, B::leaky_relu_grad(output, grad, slope));
                }
            }
        }

        match LeakyReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::leaky_relu_forward(x.into_primitive(), slope);
                prep.finish((y.clone(), slope), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::leaky_relu_forward(x.into_primitive(), slope))
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
        assert_matches_burn_leaky_relu(Device::flex().autodiff());
    }

    #[cfg(feature = "tch")]
    #[test]
    fn matches_burn_leaky_relu_and_its_gradient_on_libtorch() {
        assert_matches_burn_leaky_relu(Device::libtorch().autodiff());
        // Without autodiff, the extension's own LibTorch kernel.
        let x = Tensor::<4>::random(
            [2, 3, 5, 7],
            Distribution::Normal(0.0, 1.0),
            &Device::libtorch(),
        );
        forward(x.clone(), 0.2).to_data().assert_approx_eq::<f32>(
            &burn::tensor::activation::leaky_relu(x, 0.2).to_data(),
            Tolerance::rel_abs(1e-6, 1e-7),
        );
    }

    fn assert_matches_burn_leaky_relu(device: Device) {
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
