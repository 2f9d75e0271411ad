//! The running average of the weights (`trainer.average_weights`): the plain mean of the
//! weights after each of the run's last steps, a fraction of them. Late in a run Adam's
//! steps scatter the weights about the minimum, and validation moves from epoch to epoch
//! with them; their mean sits nearer to it, at no cost in steps. It starts late because an
//! average over weights far apart (the first epochs') is no model at all: a mean taken
//! from the start, even one that forgets, keeps enough of them to fall below the noisy
//! input. The average lives on the host as one vector in [`parameters`]' order, so every
//! backend keeps it alike, and the checkpoint stores it as a model (`average.bpk`).

use burn::module::Module;

use super::collective::{parameters, with_parameters};

/// The mean of the weights after the steps from `start` on.
#[derive(Debug, Clone)]
pub struct Average {
    /// Steps done before the first that counts.
    start: u64,
    /// The mean so far, and how many steps it holds (none before `start`).
    mean: Option<(Vec<f32>, u64)>,
}

impl Average {
    /// An average over the last `fraction` of a run of `total_steps` (at least its last
    /// step); `resumed` is a checkpoint's average after `steps_done` steps, if it had begun.
    pub fn new(fraction: f64, total_steps: u64, resumed: Option<(Vec<f32>, u64)>) -> Self {
        let last = ((fraction * total_steps as f64).ceil() as u64).clamp(1, total_steps.max(1));
        let start = total_steps.saturating_sub(last);
        let mean = resumed
            .filter(|(_, done)| *done > start)
            .map(|(values, done)| (values, done - start));
        Average { start, mean }
    }

    /// Takes in the weights of `model` after the run's `steps_done`-th step.
    pub fn update<M: Module>(&mut self, model: &M, steps_done: u64) {
        if steps_done <= self.start {
            return;
        }
        let now = parameters(model);
        match &mut self.mean {
            None => self.mean = Some((now, 1)),
            Some((mean, n)) => {
                assert_eq!(now.len(), mean.len(), "the same network");
                *n += 1;
                let w = 1.0 / *n as f32;
                for (m, x) in mean.iter_mut().zip(now) {
                    *m += w * (x - *m);
                }
            }
        }
    }

    /// `model` carrying the averaged weights; none before the average has begun.
    pub fn model<M: Module>(&self, model: M) -> Option<M> {
        let (mean, _) = self.mean.as_ref()?;
        Some(with_parameters(model, mean.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::prelude::Device;

    #[test]
    fn the_average_is_the_mean_of_the_last_steps() {
        let device = Device::flex();
        let net = LinearConfig::new(2, 1).init(&device);
        let start = parameters(&net);
        let shifted = |d: f32| with_parameters(net.clone(), start.iter().map(|x| x + d).collect());
        // The last half of 8 steps: steps 5 to 8.
        let mut a = Average::new(0.5, 8, None);
        for step in 1..=4 {
            a.update(&shifted(100.0), step);
            assert!(a.model(net.clone()).is_none(), "begun at step {step}");
        }
        for (step, d) in (5..=8).zip([1.0, 2.0, 3.0, 6.0]) {
            a.update(&shifted(d), step);
        }
        let got = parameters(&a.model(net.clone()).unwrap());
        for (g, s) in got.iter().zip(&start) {
            assert!((g - (s + 3.0)).abs() < 1e-5, "{g} against {}", s + 3.0);
        }
        // Resumed after step 6 with the mean of steps 5 and 6: the same mean at the end.
        let two: Vec<f32> = start.iter().map(|x| x + 1.5).collect();
        let mut b = Average::new(0.5, 8, Some((two, 6)));
        b.update(&shifted(3.0), 7);
        b.update(&shifted(6.0), 8);
        for (r, g) in parameters(&b.model(net).unwrap()).iter().zip(&got) {
            assert!((r - g).abs() < 1e-5, "{r} against {g}");
        }
    }

    #[test]
    fn a_run_too_short_for_its_fraction_averages_its_last_step() {
        let a = Average::new(0.1, 5, None);
        assert_eq!(a.start, 4);
        assert_eq!(Average::new(1.0, 5, None).start, 0);
    }
}
