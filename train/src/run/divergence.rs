//! Telling a training run that blew up from one that had a noisy step.
//!
//! A loss that becomes infinite or NaN is a blow-up at once (the loop rolls the run back to
//! its last checkpoint, `trainer.blow_up_retries`, or stops it). One that blows up yet stays
//! finite (a run at too high a learning rate: the loss from 7 to 5e7 within a few steps, then
//! wandering between 1e2 and 1e10) would otherwise train on to the end of its budget and
//! leave a broken model behind, found only by the validation at the end. So each step's loss
//! is compared with the run's recent level: a median (one wild step does not move it) and
//! the spread about it.

use std::collections::VecDeque;

/// The recent steps whose losses set the level a step is compared with.
const WINDOW: usize = 100;
/// Steps seen before any is judged: a run's first losses fall fast and say nothing of its
/// level.
const MIN_STEPS: usize = 20;

/// The recent losses of a run, and how far above their level a step may go.
pub struct LossWatch {
    recent: VecDeque<f32>,
    /// `trainer.divergence_factor`.
    factor: f32,
}

impl LossWatch {
    pub fn new(factor: f32) -> Self {
        LossWatch {
            recent: VecDeque::with_capacity(WINDOW),
            factor,
        }
    }

    /// Records a step's total loss; returns the recent level when the loss is above it by
    /// more than `factor` times that level: the median's size plus the losses' median
    /// absolute deviation (so that losses near zero or below it are judged by their spread).
    pub fn blew_up(&mut self, loss: f32) -> Option<f32> {
        let over = (self.recent.len() >= MIN_STEPS)
            .then(|| level(&self.recent))
            .filter(|&(median, scale)| loss - median > self.factor * scale)
            .map(|(median, _)| median);
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(loss);
        over
    }
}

/// The median of `losses`, and the scale a step is judged on: the median's size plus the
/// median absolute deviation.
fn level(losses: &VecDeque<f32>) -> (f32, f32) {
    let median = |v: &mut Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let m = median(&mut losses.iter().copied().collect());
    let mad = median(&mut losses.iter().map(|x| (x - m).abs()).collect());
    (m, m.abs() + mad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The losses of a run that trains normally: around 7, steps up to twice that.
    fn steady(watch: &mut LossWatch, n: usize) {
        for k in 0..n {
            let loss = 7.0
                + if k % 10 == 0 {
                    7.0
                } else {
                    (k % 3) as f32 * 0.3
                };
            assert_eq!(watch.blew_up(loss), None, "step {k}: {loss}");
        }
    }

    #[test]
    fn a_blow_up_is_caught_and_a_noisy_step_is_not() {
        let mut watch = LossWatch::new(1000.0);
        steady(&mut watch, 150);
        // A spike of 12x the level, as runs at a high learning rate recover from.
        assert_eq!(watch.blew_up(87.0), None);
        steady(&mut watch, 5);
        let level = watch
            .blew_up(5.4e7)
            .expect("a blow-up of 7e6 times the level");
        assert!((7.0..8.0).contains(&level), "{level}");
    }

    #[test]
    fn the_first_steps_are_not_judged_and_the_factor_is_the_limit() {
        let mut watch = LossWatch::new(1000.0);
        assert_eq!(watch.blew_up(7.0), None);
        assert_eq!(watch.blew_up(1e9), None, "the run's level is not known yet");
        let mut tight = LossWatch::new(1.5);
        steady(&mut tight, 30);
        // Level: median 7.3, its size plus the deviation 0.3 = 7.6; 1.5 times it above.
        assert_eq!(tight.blew_up(7.3 + 1.4 * 7.6), None);
        assert!(tight.blew_up(7.3 + 1.6 * 7.6).is_some());
    }

    #[test]
    fn losses_below_zero_are_judged_by_their_spread() {
        let mut watch = LossWatch::new(100.0);
        for k in 0..40 {
            let loss = -0.2 + 0.1 * (k % 5) as f32;
            assert_eq!(watch.blew_up(loss), None);
        }
        // Median 0.0, deviation 0.1: 100 times that above the median is a blow-up.
        assert_eq!(watch.blew_up(5.0), None);
        assert!(watch.blew_up(20.0).is_some());
    }
}
