//! A series' derived instances written into a staging folder of the outbox and moved in
//! whole, and why that may fail: for good, for now, or because the result did not show
//! its own input.

use std::fs;
use std::path::{Path, PathBuf};

use crossdenoise_runtime::Denoiser;
use crossdenoise_runtime::denoise_files::{FileJob, InputFile};
use tracing::{info, warn};

use super::derived::Derived;
use super::node::Node;
use super::outbox;
use super::series::Series;

/// Why a series was not denoised: for good (set aside with the reason), or for now (tried
/// again later, its instances kept).
#[derive(Debug)]
pub(super) enum Failure {
    Permanent(String),
    Temporary(String),
    /// The result did not show its own input (the guard): the series is treated as one
    /// that is not PD or PDFS.
    NotItsContrast(String),
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Permanent(reason)
    }
}

impl Failure {
    pub(super) fn io(path: &Path, e: std::io::Error) -> Self {
        Failure::Temporary(format!("{}: {e}", path.display()))
    }

    pub(super) fn of(e: crossdenoise_runtime::Error) -> Self {
        if matches!(e, crossdenoise_runtime::Error::GuideDominates { .. }) {
            Failure::NotItsContrast(e.to_string())
        } else if e.is_temporary() {
            Failure::Temporary(e.to_string())
        } else {
            Failure::Permanent(e.to_string())
        }
    }
}

/// The models a series is staged with.
pub(super) enum Staging<'a> {
    /// Each slice by the single-contrast model.
    Alone(&'a mut Denoiser),
    /// Each slice by the guided model with its partner slice as guide, or (no partner) by
    /// the single-contrast model.
    Pair {
        guided: &'a mut Denoiser,
        alone: Option<&'a mut Denoiser>,
        guides: &'a [Option<PathBuf>],
    },
}

/// Writes a series' derived instances into a staging folder of the outbox.
pub(super) fn stage(
    node: &Node,
    models: &mut Staging,
    series: &Series,
    inputs: &[InputFile],
    derived: &mut Derived,
) -> Result<PathBuf, Failure> {
    let dir = staging(node, &series.uid)?;
    let mut job = derived.job(&series.uid, node.config.series_number_offset);
    prepare_noise(&job, models, series, inputs);
    for (i, input) in inputs.iter().enumerate() {
        let (model, guide) = match models {
            Staging::Alone(model) => (&mut **model, None),
            Staging::Pair {
                guided,
                alone,
                guides,
            } => match &guides[i] {
                Some(guide) => (&mut **guided, Some(guide.as_path())),
                None => (
                    &mut **alone.as_mut().expect("checked: a single-contrast model"),
                    None,
                ),
            },
        };
        match job.denoise_file(model, input, guide, &dir, None) {
            Ok(outcome) => {
                if let Some(notice) = outcome.notice {
                    warn!(series = %series.uid, %notice, "DICOM series served against what its air says");
                }
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                forget_noise(models);
                return Err(Failure::of(e));
            }
        }
    }
    forget_noise(models);
    derived.remember(job);
    Ok(dir)
}

/// Frees the maps [`prepare_noise`] kept for the series.
fn forget_noise(models: &mut Staging) {
    match models {
        Staging::Alone(model) => model.forget_series(),
        Staging::Pair { guided, alone, .. } => {
            guided.forget_series();
            if let Some(alone) = alone {
                alone.forget_series();
            }
        }
    }
}

/// Prepares each model with the noise maps of the slices it will denoise, pooled over the
/// series (they share one g-factor map: `crossdenoise_runtime::series_noise`). Where that
/// cannot be, each slice's map is estimated alone, as it always can be, and the log says
/// why; a slice that cannot be read fails when it is denoised.
fn prepare_noise(job: &FileJob, models: &mut Staging, series: &Series, inputs: &[InputFile]) {
    let mut said = Vec::new();
    match models {
        Staging::Alone(model) => {
            let all: Vec<&InputFile> = inputs.iter().collect();
            said.push(job.prepare_series(model, &all, None));
        }
        Staging::Pair {
            guided,
            alone,
            guides,
        } => {
            let (mut paired, mut paired_guides, mut lone) = (Vec::new(), Vec::new(), Vec::new());
            for (input, guide) in inputs.iter().zip(guides.iter()) {
                match guide {
                    Some(g) => {
                        paired.push(input);
                        paired_guides.push(g.as_path());
                    }
                    None => lone.push(input),
                }
            }
            said.push(job.prepare_series(guided, &paired, Some(&paired_guides)));
            if let Some(alone) = alone {
                said.push(job.prepare_series(alone, &lone, None));
            }
        }
    }
    let aside = match models {
        Staging::Alone(model) => model.stated_set_aside(),
        Staging::Pair { guided, .. } => guided.stated_set_aside(),
    };
    if let Some((stated, configured)) = aside.phase_encoding {
        info!(series = %series.uid, stated = stated.name(), configured = configured.name(), "noise map tiles follow the phase encoding the series states (unknown: its files disagree), not the configured one");
    }
    if let Some((stated, configured)) = aside.acceleration {
        info!(series = %series.uid, stated, configured, "noise maps follow the acceleration the series states (1: its files disagree), not the configured one");
    }
    for outcome in said {
        let reason = match outcome {
            Ok(done) => match done.warning() {
                Some(said) => said,
                None => continue,
            },
            Err(e) => format!("estimated slice by slice: {e}"),
        };
        warn!(series = %series.uid, %reason, "DICOM series' noise maps not all pooled");
    }
}

/// An empty staging folder in the outbox for what will be its folder `name`.
pub(super) fn staging(node: &Node, name: &str) -> Result<PathBuf, Failure> {
    let dir = outbox::dir(&node.config.spool).join(format!(".staging-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| Failure::io(&dir, e))?;
    Ok(dir)
}

/// Moves a staged folder into the outbox as `name`, or `name~2`, `name~3`, ... while an
/// earlier folder of that name still waits for the destination (late instances of a series
/// whose first ones are undelivered); the staged folder is removed if it cannot be moved.
pub(super) fn move_into_outbox(node: &Node, staged: &Path, name: &str) -> Result<(), Failure> {
    let outbox = outbox::dir(&node.config.spool);
    let mut to = outbox.join(name);
    for k in 2.. {
        // A folder the outbox has emptied is replaced; one still holding files is not.
        match fs::rename(staged, &to) {
            Ok(()) => return Ok(()),
            Err(_) if to.is_dir() && k < 1000 => to = outbox.join(format!("{name}~{k}")),
            Err(e) => {
                let _ = fs::remove_dir_all(staged);
                return Err(Failure::io(&to, e));
            }
        }
    }
    unreachable!("the loop returns")
}
