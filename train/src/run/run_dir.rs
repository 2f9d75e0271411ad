//! The run folder: making it (and what `--force` may replace), continuing a run from its
//! checkpoint, and the files the loop writes into it as it goes (metrics.jsonl lines,
//! checkpoints, error.txt).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::Serialize;

use super::checkpoint;
use super::collective::{World, broadcast_parameters};
use super::{TrainError, TrainOptions, io};
use crate::config::Config;

pub(crate) fn prepare_run_dir(
    run: &Path,
    config: &Config,
    opts: &TrainOptions,
) -> Result<(), TrainError> {
    if run.exists() && !opts.resume {
        let empty = fs::read_dir(run).is_ok_and(|mut d| d.next().is_none());
        if !empty {
            if !holds_a_run(run) {
                return Err(TrainError::NotARun { run: run.into() });
            }
            // A run stopped before its first checkpoint has nothing to resume: it starts
            // again without --force.
            let resumable = checkpoint::find(run).is_ok();
            if resumable && !opts.force {
                return Err(TrainError::RunExists { run: run.into() });
            }
            fs::remove_dir_all(run).map_err(io(run))?;
        }
    }
    fs::create_dir_all(run).map_err(io(run))?;
    let path = run.join("config.json");
    if !opts.resume {
        fs::write(
            &path,
            serde_json::to_string_pretty(config).expect("config serialises") + "\n",
        )
        .map_err(io(&path))?;
    }
    Ok(())
}

/// Whether `dir` is a run folder this project wrote: the only kind `--force` may delete.
/// A symlink is never one (removing it would follow it elsewhere).
fn holds_a_run(dir: &Path) -> bool {
    let is_dir = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    is_dir && (dir.join("config.json").is_file() || dir.join("metrics.jsonl").is_file())
}

/// Continues a run from its checkpoint `ckpt`, whose state records the config hash and the
/// length of metrics.jsonl it was taken at (`found`): refuses another config than the run's
/// own (save `trainer.epochs` raised, which is then recorded as the run's config), loads
/// the weights and the optimiser, and drops the metric lines written after the checkpoint.
pub(crate) fn resume<M: Module>(
    run: &Path,
    config: &Config,
    ckpt: &Path,
    (found_hash, metrics_len): (&str, u64),
    model: M,
    optim: ModuleOptimizer,
    world: &World,
) -> Result<(M, ModuleOptimizer), TrainError> {
    let hash = config.hash();
    let extended = found_hash != hash;
    if extended && !extends_epochs(run, config, found_hash) {
        return Err(TrainError::ConfigChanged {
            run: run.into(),
            found: found_hash.into(),
            expected: hash,
        });
    }
    let model = checkpoint::load_model(ckpt, model)?;
    let optim = checkpoint::load_optimizer(ckpt, optim)?;
    // Every rank reads the run folder before rank 0 changes it.
    world.barrier();
    if !world.is_lead() {
        return Ok((model, optim));
    }
    if extended {
        // The same run, asked to go on for more epochs: it continues under the new config
        // (the learning-rate schedule stretches to the new length from here).
        let path = run.join("config.json");
        fs::write(
            &path,
            serde_json::to_string_pretty(config).expect("config serialises") + "\n",
        )
        .map_err(io(&path))?;
    }
    let metrics = run.join("metrics.jsonl");
    let f = OpenOptions::new()
        .write(true)
        .open(&metrics)
        .map_err(io(&metrics))?;
    f.set_len(metrics_len).map_err(io(&metrics))?;
    Ok((model, optim))
}

/// Whether `config` is the run's own config with only `trainer.epochs` raised (to at least
/// the epochs already done): a deliberate "train N more epochs" rather than a changed run.
fn extends_epochs(run: &Path, config: &Config, checkpoint_hash: &str) -> bool {
    let Ok(old) = Config::load(&run.join("config.json")) else {
        return false;
    };
    let mut same = config.clone();
    same.trainer.epochs = old.trainer.epochs;
    old.hash() == checkpoint_hash
        && same.hash() == checkpoint_hash
        && config.trainer.epochs > old.trainer.epochs
}

/// What a loop writes into its run folder as it goes: metrics.jsonl lines, checkpoints and
/// error.txt. On the ranks other than 0 of a data-parallel run it writes nothing: rank 0
/// writes for the run.
pub(crate) struct RunWriter {
    run: PathBuf,
    metrics_path: PathBuf,
    metrics: Option<File>,
    world: World,
}

impl RunWriter {
    /// Opens `run`'s metrics.jsonl to append, on the lead rank of `world`.
    pub(crate) fn open(run: &Path, world: &World) -> Result<Self, TrainError> {
        let metrics_path = run.join("metrics.jsonl");
        let metrics = if world.is_lead() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .map_err(io(&metrics_path))?;
            Some(f)
        } else {
            None
        };
        Ok(RunWriter {
            run: run.into(),
            metrics_path,
            metrics,
            world: world.clone(),
        })
    }

    pub(crate) fn metrics_path(&self) -> &Path {
        &self.metrics_path
    }

    pub(crate) fn is_lead(&self) -> bool {
        self.world.is_lead()
    }

    pub(crate) fn line<T: Serialize>(&mut self, line: &T) -> Result<(), TrainError> {
        let Some(f) = &mut self.metrics else {
            return Ok(());
        };
        let text = serde_json::to_string(line).expect("metric serialises");
        writeln!(f, "{text}").map_err(io(&self.metrics_path))
    }

    /// The length of metrics.jsonl now (what a checkpoint records); 0 where nothing is
    /// written.
    pub(crate) fn metrics_len(&self) -> Result<u64, TrainError> {
        match &self.metrics {
            Some(f) => Ok(f.metadata().map_err(io(&self.metrics_path))?.len()),
            None => Ok(0),
        }
    }

    /// The checkpoint: every rank takes rank 0's parameters (`broadcast_parameters`), so
    /// that what is saved is what all of them hold, and rank 0 saves it
    /// (`checkpoint::save`); returns the model every rank goes on with.
    pub(crate) fn checkpoint<M: Module, S: Serialize>(
        &self,
        model: M,
        averaged: Option<M>,
        optim: &ModuleOptimizer,
        state: &S,
    ) -> Result<M, TrainError> {
        let model = broadcast_parameters(&self.world, model);
        if self.is_lead() {
            checkpoint::save(&self.run, (&model, averaged), optim, state)?;
        }
        Ok(model)
    }

    /// Keeps a run's failure in its folder (error.txt) for `diagnose` and the suite
    /// summary; returns it, or the reason it could not be written.
    pub(crate) fn failure(&self, err: TrainError) -> TrainError {
        if !self.is_lead() {
            return err;
        }
        let path = self.run.join("error.txt");
        match fs::write(&path, format!("{err}\n")) {
            Ok(()) => err,
            Err(source) => TrainError::Io { path, source },
        }
    }
}

/// When a run started, and from which step its steps are timed (a resumed run's earlier
/// steps are not): where a run summary's times come from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    pub(super) started: Instant,
    pub(super) stepping: Instant,
    pub(super) first_step: u64,
}

impl RunClock {
    pub(crate) fn start() -> Self {
        let now = Instant::now();
        RunClock {
            started: now,
            stepping: now,
            first_step: 0,
        }
    }

    /// Steps are timed from now on, starting at `step`.
    pub(crate) fn steps_from(&mut self, step: u64) {
        self.stepping = Instant::now();
        self.first_step = step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_replaces_only_a_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let config: Config = serde_json::from_str(r#"{"name":"run"}"#).unwrap();
        let force = TrainOptions {
            force: true,
            ..TrainOptions::default()
        };
        // Someone's folder that happens to carry the run's name survives --force.
        let theirs = dir.path().join("theirs");
        fs::create_dir_all(&theirs).unwrap();
        fs::write(theirs.join("notes.txt"), "keep").unwrap();
        let err = prepare_run_dir(&theirs, &config, &force).unwrap_err();
        assert!(matches!(err, TrainError::NotARun { .. }), "{err}");
        assert!(theirs.join("notes.txt").is_file());

        // A run that saved a checkpoint needs --force; one that never did starts again.
        let run = dir.path().join("run");
        prepare_run_dir(&run, &config, &TrainOptions::default()).unwrap();
        fs::write(run.join("metrics.jsonl"), "").unwrap();
        prepare_run_dir(&run, &config, &TrainOptions::default()).unwrap();
        assert!(run.join("config.json").is_file());
        fs::create_dir_all(run.join("checkpoint")).unwrap();
        fs::write(run.join("checkpoint/state.json"), "{}").unwrap();
        let err = prepare_run_dir(&run, &config, &TrainOptions::default()).unwrap_err();
        assert!(matches!(err, TrainError::RunExists { .. }), "{err}");
        prepare_run_dir(&run, &config, &force).unwrap();
        assert!(!run.join("checkpoint").exists());

        // An empty folder is taken as it is.
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        prepare_run_dir(&empty, &config, &TrainOptions::default()).unwrap();
    }
}
