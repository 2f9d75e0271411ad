//! The learning-rate schedule.

use crate::config::{Config, LrSchedule};

/// The learning rate of `step`: linear warm-up, then constant or cosine decay to 0.
pub fn learning_rate(config: &Config, step: u64, total_steps: u64) -> f64 {
    let t = &config.trainer;
    let warm = t.warmup_steps as u64;
    if step < warm {
        return t.lr * (step + 1) as f64 / warm as f64;
    }
    match t.lr_schedule {
        LrSchedule::Constant => t.lr,
        LrSchedule::Cosine => {
            let span = total_steps.saturating_sub(warm).max(1) as f64;
            let progress = ((step - warm) as f64 / span).min(1.0);
            t.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}
