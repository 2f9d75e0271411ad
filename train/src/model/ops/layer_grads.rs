//! Burn's autodiff glue for the layers of an input, a weight and a bias whose backends compute
//! the output and all three gradients themselves (the 3x3 convolution, the 2x2 up-sampling):
//! one backward node per call that hands the saved state and the output gradient to the
//! backend and registers the gradients Burn asked for.

use std::marker::PhantomData;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend};

/// A layer `(x, weight, bias) -> y` on backend `B`, with its gradients.
pub trait LayerGrads<B: Backend>: 'static {
    /// What the gradient step keeps from the forward pass.
    type Saved: Clone + Send + std::fmt::Debug + 'static;

    /// The output when nothing needs a gradient (inference, validation).
    fn output(x: FloatTensor<B>, weight: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B>;

    /// The output, and what the gradient step needs for the inputs marked in `tracked`
    /// (`[x, weight, bias]`).
    fn tracked(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
        tracked: [bool; 3],
    ) -> (FloatTensor<B>, Self::Saved);

    /// `[dx, dweight, dbias]` for the output gradient `grad`, `Some` where tracked.
    fn grads(saved: Self::Saved, grad: FloatTensor<B>) -> [Option<FloatTensor<B>>; 3];
}

/// The inputs themselves, for layers whose gradient kernels read them.
#[derive(Clone, Debug)]
pub struct SavedInputs<B: Backend> {
    pub x: FloatTensor<B>,
    pub weight: FloatTensor<B>,
    pub bias: FloatTensor<B>,
    pub tracked: [bool; 3],
}

impl<B: Backend> SavedInputs<B> {
    /// `layer`'s output, and the inputs kept for the gradient step.
    pub fn run(
        layer: fn(FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
        tracked: [bool; 3],
    ) -> (FloatTensor<B>, Self) {
        let y = layer(x.clone(), weight.clone(), bias.clone());
        let saved = SavedInputs {
            x,
            weight,
            bias,
            tracked,
        };
        (y, saved)
    }
}

/// The backward node of layer `L`; `fn() -> L` keeps it `Send` whatever `L` is.
struct LayerBackward<L>(PhantomData<fn() -> L>);

impl<L> std::fmt::Debug for LayerBackward<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LayerBackward<{}>", std::any::type_name::<L>())
    }
}

impl<B: Backend, L: LayerGrads<B>> Backward<B, 3> for LayerBackward<L> {
    type State = L::Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let [dx, dweight, dbias] = L::grads(ops.state, grad);
        for (node, gradient) in [(node_x, dx), (node_weight, dweight), (node_bias, dbias)] {
            if let (Some(node), Some(gradient)) = (node, gradient) {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

/// Layer `L` on the autodiff backend over `B`: tracked through [`LayerGrads::tracked`] when any
/// input needs a gradient, [`LayerGrads::output`] otherwise.
pub fn forward<L: LayerGrads<B>, B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    match LayerBackward::<L>(PhantomData)
        .prepare::<C>([x.node(), weight.node(), bias.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let tracked = [x.is_tracked(), weight.is_tracked(), bias.is_tracked()];
            let (y, saved) = L::tracked(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                tracked,
            );
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(L::output(
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        )),
    }
}

/// One layer `(x, weight, bias) -> y` as a Burn backend extension, written once for every
/// such layer (the 3x3 convolution, the 2x2 up-sampling): the backend trait `$Backend` with
/// its method `$op` (Burn's own `$fallback` op by default, so other backends need nothing),
/// flex's implementation (the project's kernel `$kernel::$op` where `$kernel::supports` the
/// tensors, Burn's op otherwise), LibTorch's (Burn's op, recorded by torch's autograd as
/// `$torch` when a gradient is wanted), autodiff through [`forward`], the layer type
/// `$Layer` with its [`LayerGrads`] on flex (gradients by the op's own `$flex_grads`) and on
/// LibTorch, and `dispatch`, which runs the extension on the dispatch backend. Each op's
/// file keeps what is its own: the kernels, the flex gradients and the layer's `forward`.
macro_rules! extension_layer {
    (
        $(#[$doc:meta])*
        $Backend:ident :: $op:ident for $Layer:ident {
            fallback: $fallback:ident,
            kernel: $kernel:ident,
            flex_grads: $flex_grads:path,
            torch: |$x:ident, $w:ident, $b:ident| $torch:expr $(,)?
        }
    ) => {
        $(#[$doc])*
        #[burn::backend::backend_extension(Flex, LibTorch: cfg(feature = "tch"), Autodiff)]
        pub trait $Backend: Backend {
            /// `x`, `weight` and `bias` as the layer's Burn module holds them.
            fn $op(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                bias: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                Self::$fallback(x, weight, Some(bias), options())
            }
        }

        impl $Backend for Flex {
            fn $op(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                bias: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                if $kernel::supports(&x, &weight) {
                    $kernel::$op(&x, &weight, Some(&bias))
                } else {
                    Self::$fallback(x, weight, Some(bias), options())
                }
            }
        }

        #[cfg(feature = "tch")]
        impl $Backend for LibTorch {}

        impl<B: Backend, C: CheckpointStrategy> $Backend for Autodiff<B, C>
        where
            $Layer: LayerGrads<B>,
        {
            fn $op(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                bias: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                layer_grads::forward::<$Layer, B, C>(x, weight, bias)
            }
        }

        /// The layer, for [`layer_grads`]: a tracked op and its gradients, each backend its
        /// fastest way.
        pub struct $Layer;

        impl LayerGrads<Flex> for $Layer {
            type Saved = SavedInputs<Flex>;

            fn output(
                x: FloatTensor<Flex>,
                weight: FloatTensor<Flex>,
                bias: FloatTensor<Flex>,
            ) -> FloatTensor<Flex> {
                Flex::$op(x, weight, bias)
            }

            fn tracked(
                x: FloatTensor<Flex>,
                weight: FloatTensor<Flex>,
                bias: FloatTensor<Flex>,
                tracked: [bool; 3],
            ) -> (FloatTensor<Flex>, Self::Saved) {
                SavedInputs::run(Flex::$op, x, weight, bias, tracked)
            }

            fn grads(
                saved: Self::Saved,
                grad: FloatTensor<Flex>,
            ) -> [Option<FloatTensor<Flex>>; 3] {
                $flex_grads(saved, grad)
            }
        }

        /// Torch's own autograd records the layer, so one `convolution_backward` (oneDNN's
        /// kernels, as PyTorch's training runs them) gives all three gradients.
        #[cfg(feature = "tch")]
        impl LayerGrads<LibTorch> for $Layer {
            type Saved = super::torch_graph::TorchGraph;

            fn output(
                x: FloatTensor<LibTorch>,
                weight: FloatTensor<LibTorch>,
                bias: FloatTensor<LibTorch>,
            ) -> FloatTensor<LibTorch> {
                LibTorch::$op(x, weight, bias)
            }

            fn tracked(
                x: FloatTensor<LibTorch>,
                weight: FloatTensor<LibTorch>,
                bias: FloatTensor<LibTorch>,
                tracked: [bool; 3],
            ) -> (FloatTensor<LibTorch>, Self::Saved) {
                super::torch_graph::TorchGraph::record(
                    [x, weight, bias],
                    tracked,
                    |[$x, $w, $b]| $torch,
                )
            }

            fn grads(
                saved: Self::Saved,
                grad: FloatTensor<LibTorch>,
            ) -> [Option<FloatTensor<LibTorch>>; 3] {
                saved.gradients(&grad)
            }
        }

        /// The extension on the dispatch backend (flex or LibTorch devices).
        fn dispatch(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
            Tensor::from_dispatch(<Dispatch as $Backend>::$op(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.into_dispatch(),
            ))
        }
    };
}

pub(super) use extension_layer;
