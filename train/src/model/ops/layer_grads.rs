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
