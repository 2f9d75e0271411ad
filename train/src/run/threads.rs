//! Several devices in one process (`trainer.devices`): one training thread per device, the
//! ranks of a [`Collective`] whose sums go through shared host memory.
//!
//! This is the in-process twin of the MPI transport: the same loop, the same split of each
//! step's batch, the same averaged gradients, so N devices train the model one device
//! would. It works with every backend (several GPUs on `libtorch-cuda`, where Burn's own
//! all-reduce, CUDA / NCCL on the cubecl backend only, does not reach).

use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use super::collective::{Collective, World};
use super::{Observer, Quiet, TrainError, TrainOptions};
use crate::config::Config;

/// What the threads of one run share: the sum in progress and the last one's result.
struct Shared {
    size: usize,
    round: Mutex<Round>,
    done: Condvar,
}

#[derive(Default)]
struct Round {
    /// Each rank's values in this round, by rank: the sum is taken in rank order once all
    /// have arrived, so that it rounds the same whichever thread comes first.
    parts: Vec<Option<Vec<f32>>>,
    arrived: usize,
    /// Counts finished rounds; a waiting rank wakes when it moves on.
    generation: u64,
    /// The last finished round's sum, kept until every rank has copied it (no rank can
    /// finish the next round before all have arrived in it, after copying).
    result: Vec<f32>,
    /// Set when a rank's run ended with an error: the others stop instead of waiting.
    failed: bool,
}

/// One rank's handle on the shared sums.
struct Rank {
    shared: Arc<Shared>,
    rank: usize,
}

impl Rank {
    fn lock(&self) -> MutexGuard<'_, Round> {
        // A rank that panicked while holding the lock has already ended the run.
        self.shared.round.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The panic a rank raises when another rank's run failed; the run's error is the other
/// rank's, and [`train_on_devices`] reports that one.
const PEER_FAILED: &str = "stopped: the training on another device failed (its error follows)";

impl Collective for Rank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn sum(&self, values: &mut [f32]) {
        let mut round = self.lock();
        if round.failed {
            panic!("{PEER_FAILED}");
        }
        round.parts[self.rank] = Some(values.to_vec());
        round.arrived += 1;
        if round.arrived == self.shared.size {
            let mut parts = round
                .parts
                .iter_mut()
                .map(|p| p.take().expect("every rank arrived"));
            let mut sum = parts.next().expect("one rank at least");
            for part in parts {
                assert_eq!(part.len(), sum.len(), "ranks summed unequal lengths");
                for (s, v) in sum.iter_mut().zip(part) {
                    *s += v;
                }
            }
            round.result = sum;
            round.arrived = 0;
            round.generation += 1;
            self.shared.done.notify_all();
        } else {
            let generation = round.generation;
            while round.generation == generation && !round.failed {
                round = self
                    .shared
                    .done
                    .wait(round)
                    .unwrap_or_else(|p| p.into_inner());
            }
            if round.generation == generation {
                panic!("{PEER_FAILED}");
            }
        }
        values.copy_from_slice(&round.result);
    }

    fn broadcast(&self, values: &mut [f32]) {
        // Rank 0's values plus zeros: its values exactly.
        if self.rank != 0 {
            values.fill(0.0);
        }
        self.sum(values);
    }

    fn barrier(&self) {
        self.sum(&mut []);
    }
}

/// Trains `config` on each of `config.trainer.devices` at once, one thread per device, as
/// one data-parallel run; the first device's thread reports to `observer` and writes the run
/// folder. Returns rank 0's summary, or the first error of any device.
pub(crate) fn train_on_devices<S: Send>(
    config: &Config,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
    train: impl Fn(&Config, &TrainOptions, &mut dyn Observer) -> Result<S, TrainError> + Sync,
) -> Result<S, TrainError> {
    let devices = config.trainer.devices.clone();
    let shared = Arc::new(Shared {
        size: devices.len(),
        round: Mutex::new(Round {
            parts: vec![None; devices.len()],
            ..Round::default()
        }),
        done: Condvar::new(),
    });
    // What a thread may carry: the options without the world, which each rank makes.
    let (out, resume, force) = (opts.out.clone(), opts.resume, opts.force);
    let (stop, stop_after_steps) = (opts.stop.clone(), opts.stop_after_steps);
    let run_rank = |rank: usize, observer: &mut dyn Observer| {
        let mut config = config.clone();
        config.trainer.device_index = devices[rank];
        config.trainer.devices = vec![];
        let opts = TrainOptions {
            out: out.clone(),
            resume,
            force,
            stop: stop.clone(),
            stop_after_steps,
            world: World::new(Rc::new(Rank {
                shared: shared.clone(),
                rank,
            })),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train(&config, &opts, observer)
        }));
        if !matches!(result, Ok(Ok(_))) {
            let mut round = shared.round.lock().unwrap_or_else(|p| p.into_inner());
            round.failed = true;
            shared.done.notify_all();
        }
        result
    };
    thread::scope(|scope| {
        let others: Vec<_> = (1..devices.len())
            .map(|rank| {
                let run_rank = &run_rank;
                thread::Builder::new()
                    .name(format!("train-device-{rank}"))
                    .spawn_scoped(scope, move || run_rank(rank, &mut Quiet))
                    .expect("a training thread starts")
            })
            .collect();
        let lead = run_rank(0, observer);
        let results =
            std::iter::once(lead).chain(others.into_iter().map(|h| h.join().unwrap_or_else(Err)));
        // The first real failure: an error, else a panic that is not a rank stopping
        // because another failed.
        let (mut summary, mut error, mut panic) = (None, None, None);
        for (rank, result) in results.enumerate() {
            match result {
                Ok(Ok(s)) if rank == 0 => summary = Some(s),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    error.get_or_insert(e);
                }
                Err(payload) if !is_peer_failure(&payload) => {
                    panic.get_or_insert(payload);
                }
                Err(_) => {}
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        Ok(summary.expect("rank 0 finished when no rank failed"))
    })
}

fn is_peer_failure(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    text.is_some_and(|t| t.contains(PEER_FAILED))
}
