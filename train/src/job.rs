//! What a config trains: the product's denoiser pair (`model.kind` guided or single) or the
//! study's dual-domain network, for callers that take any config (the CLI).

use crate::config::Config;
use crate::denoiser::{self, DenoiserFinals};
use crate::run::{Observer, RunSummary, TrainError, TrainOptions};
use crate::study::{self, StudyFinals};

/// The last figures of whichever task a config trained.
#[derive(Debug, Clone)]
pub enum Finals {
    Denoiser(Box<DenoiserFinals>),
    Study(Box<StudyFinals>),
}

/// Trains what `config` describes and returns the run's summary.
pub fn train(
    config: &Config,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<RunSummary<Finals>, TrainError> {
    Ok(if config.model.kind.is_denoiser() {
        denoiser::train(config, opts, observer)?.with_finals(|f| Finals::Denoiser(Box::new(f)))
    } else {
        study::train(config, opts, observer)?.with_finals(|f| Finals::Study(Box::new(f)))
    })
}
