//! Seeded weight initialisation independent of the backend.
//!
//! Burn's initialisers draw from a per-backend, process-global generator: two runs in one
//! process (tests, experiment suites) or on two backends would start from different
//! weights. Here every parameter is redrawn from one ChaCha generator seeded by the config,
//! in the module's field order, so the same seed gives the same weights everywhere — the
//! basis for reproducible runs and for comparing backends step by step.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Redraws every non-zero parameter: Kaiming-uniform with PyTorch's default bound
/// `1 / sqrt(fan_in)` for weights, and the same bound for the bias that follows a weight.
/// Parameters that are exactly zero (identity mapping's head) stay zero.
pub fn seeded<M: Module>(module: M, seed: u64) -> M {
    let mut mapper = SeededInit {
        rng: ChaCha8Rng::seed_from_u64(seed),
        fan_in: 1,
    };
    module.map(&mut mapper)
}

struct SeededInit {
    rng: ChaCha8Rng,
    fan_in: usize,
}

impl ModuleMapper for SeededInit {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let dims = t.dims();
            let values = t
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .expect("float parameter");
            if values.iter().all(|&v| v == 0.0) {
                return t;
            }
            if D >= 2 {
                self.fan_in = dims[1..].iter().product::<usize>().max(1);
            }
            let bound = 1.0 / (self.fan_in as f32).sqrt();
            let fresh: Vec<f32> = (0..values.len())
                .map(|_| self.rng.random_range(-bound..bound))
                .collect();
            let grad = t.is_require_grad();
            let new = Tensor::<D>::from_data(TensorData::new(fresh, dims), &t.device());
            if grad { new.require_grad() } else { new }
        })
    }
}
