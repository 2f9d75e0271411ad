//! Data-parallel training across processes (docs/training.md, "Training on a cluster").
//!
//! Every process (rank) of a run builds the same model and draws the same global batch of
//! `trainer.batch_size`; each runs forward and backward on its own share of it, then the
//! gradients are summed over the ranks in the model's parameter order, each rank's weighted
//! by its share, and divided by the whole batch: every rank then holds the gradient a
//! single process would have computed on the whole batch, and takes the same optimiser
//! step. A config therefore trains the same model on 1 or N processes (to float rounding),
//! and its learning rate needs no rescaling.
//!
//! The exchange goes through host memory, so it works with every backend; the transport is
//! whatever implements [`Collective`] (MPI, with the `mpi` feature).

use std::fmt;
use std::ops::Range;
use std::rc::Rc;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// The collective operations data-parallel training needs, over all ranks of a run.
/// Every rank must call them in the same order with the same lengths.
pub trait Collective {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Replaces `values` by their element-wise sum over all ranks, the same on every rank.
    fn sum(&self, values: &mut [f32]);
    /// Replaces `values` by rank 0's on every rank.
    fn broadcast(&self, values: &mut [f32]);
    /// Returns once every rank has called it.
    fn barrier(&self);
}

/// The processes a run trains on: one (the default), or the ranks of a [`Collective`].
#[derive(Clone, Default)]
pub struct World {
    group: Option<Rc<dyn Collective>>,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "World {{ rank: {}, size: {} }}",
            self.rank(),
            self.size()
        )
    }
}

impl World {
    /// A run over the ranks of `group` (a single process when it has one rank).
    pub fn new(group: Rc<dyn Collective>) -> Self {
        World {
            group: (group.size() > 1).then_some(group),
        }
    }

    pub fn rank(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.rank())
    }

    pub fn size(&self) -> usize {
        self.group.as_ref().map_or(1, |g| g.size())
    }

    /// Whether this rank writes the run folder (checkpoints, metrics, samples, summary):
    /// rank 0 alone.
    pub fn is_lead(&self) -> bool {
        self.rank() == 0
    }

    /// This rank's part of a global batch of `total` items: contiguous, in rank order, the
    /// sizes differing by one at most (the first `total % size` ranks take one more).
    pub fn share(&self, total: usize) -> Range<usize> {
        share(total, self.rank(), self.size())
    }

    /// Replaces `values` by their sum over all ranks (unchanged on one process).
    pub fn sum(&self, values: &mut [f32]) {
        if let Some(g) = &self.group {
            g.sum(values);
        }
    }

    /// Waits for every rank (a no-op on one process).
    pub fn barrier(&self) {
        if let Some(g) = &self.group {
            g.barrier();
        }
    }
}

/// How many processes an MPI launcher started this one among, read from what the
/// launchers set: Open MPI's `mpirun` (`OMPI_COMM_WORLD_SIZE`), MPICH's and Intel MPI's
/// (`PMI_SIZE`), and PMIx launchers such as Slurm's `srun --mpi=pmix` (`PMIX_RANK`, the
/// count from `SLURM_STEP_NUM_TASKS`). `None`: no launcher started it; `Some(None)`: one
/// did, without saying how many processes.
pub fn launched_processes() -> Option<Option<usize>> {
    let var = |name: &str| std::env::var(name).ok();
    let count = |name: &str| var(name).and_then(|v| v.trim().parse::<usize>().ok());
    if var("OMPI_COMM_WORLD_SIZE").is_some() {
        return Some(count("OMPI_COMM_WORLD_SIZE"));
    }
    if var("PMI_SIZE").is_some() {
        return Some(count("PMI_SIZE"));
    }
    if var("PMIX_RANK").is_some() {
        return Some(count("SLURM_STEP_NUM_TASKS"));
    }
    None
}

/// Rank `rank`'s part of `total` items split over `size` ranks.
pub fn share(total: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (total / size, total % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Averages this rank's gradients `grads` of `model`, computed on `weight` items, over all
/// ranks (weighted by each rank's items) and the step's `scalars` (this rank's mean losses)
/// the same way, so every rank ends with the whole batch's gradients and losses; `stop`
/// becomes true on every rank when it was on any (a Ctrl-C reaches one rank, and all must
/// stop after the same step). A rank with no items passes empty `grads` and weight 0. On
/// one process nothing is copied.
pub fn average_gradients<M: Module>(
    world: &World,
    model: &M,
    mut grads: GradientsParams,
    (weight, scalars): (usize, &mut [f32]),
    stop: &mut bool,
) -> GradientsParams {
    let Some(group) = &world.group else {
        return grads;
    };
    let w = weight as f32;
    let mut flat = Flatten {
        grads: &mut grads,
        weight: w,
        values: Vec::new(),
        slots: Vec::new(),
    };
    model.visit(&mut flat);
    let Flatten {
        mut values, slots, ..
    } = flat;
    // After the gradients: whether each rank had each one, the weights, the scalars.
    let params = values.len();
    values.extend(slots.iter().map(|s| if s.present { 1.0 } else { 0.0 }));
    values.push(if *stop { 1.0 } else { 0.0 });
    values.push(w);
    values.extend(scalars.iter().map(|s| s * w));
    group.sum(&mut values);

    *stop = values[params + slots.len()] > 0.0;
    let total = values[params + slots.len() + 1];
    for (s, v) in scalars.iter_mut().zip(&values[params + slots.len() + 2..]) {
        *s = v / total;
    }
    let mut at = 0;
    for (k, slot) in slots.into_iter().enumerate() {
        let len = slot.len;
        if values[params + k] > 0.0 {
            let mean: Vec<f32> = values[at..at + len].iter().map(|v| v / total).collect();
            (slot.restore)(&mut grads, mean);
        }
        at += len;
    }
    grads
}

type Restore = Box<dyn FnOnce(&mut GradientsParams, Vec<f32>)>;

/// One trainable parameter's place in the flat buffer, and how to put its gradient back.
struct Slot {
    len: usize,
    present: bool,
    restore: Restore,
}

/// Takes every trainable parameter's gradient out of `grads`, in the model's visiting order
/// (the same on every rank), into one buffer, each scaled by `weight`; zeros where this
/// rank has none.
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    weight: f32,
    values: Vec<f32>,
    slots: Vec<Slot>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let id: ParamId = param.id;
        let value = param.val();
        let dims = value.shape().dims::<D>();
        let len = dims.iter().product::<usize>();
        let (present, dtype, device) = match self.grads.remove::<D>(id) {
            Some(g) => {
                let (dtype, device) = (g.dtype(), g.device());
                let data = g.into_data().convert::<f32>();
                let v = data.as_slice::<f32>().expect("converted to f32");
                self.values.extend(v.iter().map(|x| x * self.weight));
                (true, dtype, device)
            }
            None => {
                self.values.extend(std::iter::repeat_n(0.0, len));
                let inner = value.inner();
                (false, inner.dtype(), inner.device())
            }
        };
        let restore: Restore = Box::new(move |grads, mean| {
            let data = TensorData::new(mean, dims).convert_dtype(dtype);
            grads.register::<D>(id, Tensor::<D>::from_data(data, &device));
        });
        self.slots.push(Slot {
            len,
            present,
            restore,
        });
    }
}

/// `model` with rank 0's parameters on every rank: at the start (a resumed run's ranks
/// read the same checkpoint, a fresh one's draw the same initial weights, but a GPU's
/// seeded draws need not agree across machines) and at every checkpoint, so that float
/// rounding that differs between unlike machines cannot let the ranks drift apart.
pub fn broadcast_parameters<M: Module>(world: &World, model: M) -> M {
    let Some(group) = &world.group else {
        return model;
    };
    let mut values = parameters(&model);
    group.broadcast(&mut values);
    with_parameters(model, values)
}

/// `model` with its float parameters replaced by `values` (in [`parameters`]' order).
pub fn with_parameters<M: Module>(model: M, values: Vec<f32>) -> M {
    model.map(&mut Scatter { values, at: 0 })
}

/// Every float parameter of `model`, in its visiting order, as one vector.
pub fn parameters<M: Module>(model: &M) -> Vec<f32> {
    let mut gather = Gather { values: Vec::new() };
    model.visit(&mut gather);
    gather.values
}

/// How far two copies of the same parameters are apart: the 90th percentile and the
/// largest of their absolute differences. Data-parallel training keeps nearly all within
/// float rounding of one process's, but Adam divides each gradient by its own running size,
/// so a parameter whose true gradient is zero (a convolution's bias before an instance
/// norm: a few percent of a small network's parameters, with no effect on its output)
/// moves by up to the learning rate on the rounding's sign alone. The largest difference
/// is bounded by twice the sum of the steps' learning rates, no better; what the model
/// computes agrees to rounding.
pub fn divergence(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len(), "parameters of different models");
    let mut diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    diff.sort_by(f32::total_cmp);
    match diff.last() {
        Some(&worst) => (diff[diff.len() * 9 / 10], worst),
        None => (0.0, 0.0),
    }
}

struct Gather {
    values: Vec<f32>,
}

impl ModuleVisitor for Gather {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data().convert::<f32>();
        self.values
            .extend_from_slice(data.as_slice::<f32>().expect("converted to f32"));
    }
}

struct Scatter {
    values: Vec<f32>,
    at: usize,
}

impl ModuleMapper for Scatter {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let dims = t.shape().dims::<D>();
            let len = dims.iter().product::<usize>();
            let values = self.values[self.at..self.at + len].to_vec();
            self.at += len;
            let data = TensorData::new(values, dims).convert_dtype(t.dtype());
            let grad = t.is_require_grad();
            Tensor::<D>::from_data(data, &t.device()).set_require_grad(grad)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_rank_order() {
        for total in 0..20 {
            for size in 1..6 {
                let parts: Vec<_> = (0..size).map(|r| share(total, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, total);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() <= w[1].len() + 1);
                }
            }
        }
    }
}
