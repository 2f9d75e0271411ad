//! From received instances to derived ones. The spool's received instances are grouped
//! into series; a series is complete once nothing of it has arrived for `series_stable_s`.
//! A complete PD series and a complete PDFS series of the same study and frame of reference
//! are a pair: each is denoised by its own contrast's guided model with the other as guide,
//! slices matched by geometry. A series whose partner has not come within `pair_wait_s` is
//! denoised alone by its contrast's single model; one whose contrast is not recognised, or
//! that no configured model may take, is set aside in `failed/` with the reason. Results go
//! to the outbox as one folder per series, moved there whole, so the outbox never holds half
//! a series and a restart redoes exactly what had not reached it.
//!
//! Runs on a thread of its own: inference is blocking work, and the models stay with it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crossdenoise_image::ModelKind;
use crossdenoise_image::io::Format;
use crossdenoise_runtime::denoise_files::{FileJob, InputFile, match_guides};
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime};
use dicom_dictionary_std::tags;
use tracing::{info, warn};

use super::outbox::{self, set_aside};
use super::{Node, enhanced, inc};
use crate::config::{ContrastMarkers, DicomConfig};
use crate::contrast::{Contrast, classify};

#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("dicom.models.{key}: {source}")]
    Open {
        key: &'static str,
        source: Box<crossdenoise_runtime::Error>,
    },
    #[error("dicom.models.{key}: {path} is {label}, not {wanted}")]
    Wrong {
        key: &'static str,
        path: PathBuf,
        label: String,
        wanted: String,
    },
}

/// The opened models, checked against the contrast and kind their key promises.
pub struct Models {
    guided: Option<(Denoiser, Denoiser)>,
    alone: HashMap<Contrast, Denoiser>,
}

impl Models {
    pub fn open(
        config: &DicomConfig,
        runtime: &OnnxRuntime,
        options: &DenoiserOptions,
    ) -> Result<Self, ModelsError> {
        let open = |key: &'static str, path: &Path, contrast: Contrast, kind: ModelKind| {
            let d = Denoiser::open(runtime, path, options).map_err(|e| ModelsError::Open {
                key,
                source: Box::new(e),
            })?;
            let meta = d.metadata();
            if meta.kind != kind || !meta.output_contrast().eq_ignore_ascii_case(contrast.name()) {
                return Err(ModelsError::Wrong {
                    key,
                    path: path.into(),
                    label: meta.path_label(),
                    wanted: format!("a {} {} model", contrast.name(), kind.name()),
                });
            }
            Ok(d)
        };
        let m = &config.models;
        let guided = match (&m.pd, &m.pdfs) {
            (Some(pd), Some(pdfs)) => Some((
                open("pd", pd, Contrast::Pd, ModelKind::Guided)?,
                open("pdfs", pdfs, Contrast::Pdfs, ModelKind::Guided)?,
            )),
            _ => None,
        };
        let mut alone = HashMap::new();
        for (key, path, contrast) in [
            ("pd_alone", &m.pd_alone, Contrast::Pd),
            ("pdfs_alone", &m.pdfs_alone, Contrast::Pdfs),
        ] {
            if let Some(path) = path {
                alone.insert(contrast, open(key, path, contrast, ModelKind::Single)?);
            }
        }
        Ok(Models { guided, alone })
    }

    /// The guided model of `contrast` and its single-contrast model, if configured.
    fn for_pair(&mut self, contrast: Contrast) -> Option<(&mut Denoiser, Option<&mut Denoiser>)> {
        let guided = self.guided.as_mut().map(|(pd, pdfs)| match contrast {
            Contrast::Pd => pd,
            Contrast::Pdfs => pdfs,
        })?;
        Some((guided, self.alone.get_mut(&contrast)))
    }
}

/// A received instance's header fields.
#[derive(Debug, Clone)]
struct Instance {
    series: String,
    study: String,
    frame: Option<String>,
    description: String,
    contrast: Option<Contrast>,
    arrived: SystemTime,
    /// An Enhanced MR (multi-frame) instance, to be split into its frames first.
    multi_frame: bool,
}

/// A complete or growing series in the spool.
#[derive(Debug, Clone)]
struct Series {
    uid: String,
    study: String,
    frame: Option<String>,
    description: String,
    contrast: Option<Contrast>,
    files: Vec<PathBuf>,
    last: SystemTime,
}

/// Runs the pipeline until `stop` turns true.
pub fn run(node: Arc<Node>, mut models: Models, stop: tokio::sync::watch::Receiver<bool>) {
    let outbox_dir = outbox::dir(&node.config.spool);
    // Half-written results of a run that ended: their instances are still received.
    for entry in fs::read_dir(&outbox_dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(".staging-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let mut headers: HashMap<PathBuf, Instance> = HashMap::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut waiting_logged: HashSet<String> = HashSet::new();
    let mut derived = Derived::default();
    while !*stop.borrow() {
        std::thread::sleep(Duration::from_millis(200));
        let series = scan(&node, &mut headers, &done);
        let now = SystemTime::now();
        let age = |s: &Series| now.duration_since(s.last).unwrap_or_default();
        let stable = Duration::from_secs_f64(node.config.series_stable_s);
        let pair_wait = Duration::from_secs_f64(node.config.pair_wait_s);
        derived.forget_older_than(pair_wait);
        let complete: Vec<&Series> = series.iter().filter(|s| age(s) >= stable).collect();
        for s in &complete {
            if done.contains(&s.uid) {
                continue;
            }
            // Late instances of a series denoised within pair_wait_s: its partner has been
            // sent on, so they are denoised alone, at once, into the same derived series.
            let late_model = s
                .contrast
                .filter(|_| derived.knows(&s.uid))
                .and_then(|c| models.alone.get_mut(&c));
            if let Some(model) = late_model {
                info!(series = %s.uid, instances = s.files.len(), "DICOM instances after their series was denoised: denoised alone into its derived series");
                done.insert(s.uid.clone());
                match alone(&node, model, s, &mut derived) {
                    Ok(n) => {
                        node.stats
                            .instances_late
                            .fetch_add(n as u64, Ordering::Relaxed);
                        node.stats
                            .instances_denoised
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(reason) => give_up(&node, s, &reason),
                }
                continue;
            }
            let Some(contrast) = s.contrast else {
                give_up(
                    &node,
                    s,
                    &format!("contrast not recognised from {:?}", s.description),
                );
                done.insert(s.uid.clone());
                continue;
            };
            let partner = complete.iter().find(|p| {
                p.contrast == Some(contrast.partner())
                    && p.study == s.study
                    && p.frame == s.frame
                    && !done.contains(&p.uid)
            });
            let paired = partner.filter(|_| models.guided.is_some());
            let outcome = match paired {
                Some(p) => {
                    let (pd, pdfs) = if contrast == Contrast::Pd {
                        (*s, *p)
                    } else {
                        (*p, *s)
                    };
                    done.insert(p.uid.clone());
                    info!(pd = %pd.uid, pdfs = %pdfs.uid, "DICOM series paired: each denoised with the other as its guide");
                    guided_pair(&node, &mut models, pd, pdfs, &mut derived).inspect(|_| {
                        node.stats.series_paired.fetch_add(2, Ordering::Relaxed);
                    })
                }
                _ if models.guided.is_some() && age(s) < pair_wait => {
                    if waiting_logged.insert(s.uid.clone()) {
                        info!(series = %s.uid, contrast = contrast.name(), wait_s = node.config.pair_wait_s, "DICOM series complete: waiting for its partner contrast");
                    }
                    continue;
                }
                _ => match models.alone.get_mut(&contrast) {
                    Some(model) => {
                        info!(series = %s.uid, contrast = contrast.name(), "DICOM series without a partner: denoised alone by the single-contrast model");
                        alone(&node, model, s, &mut derived)
                            .inspect(|_| inc(&node.stats.series_alone))
                    }
                    None => Err(format!(
                        "no {} partner within pair_wait_s and no `{}_alone` model",
                        contrast.partner().name(),
                        contrast.name()
                    )),
                },
            };
            done.insert(s.uid.clone());
            match outcome {
                Ok(n) => {
                    node.stats
                        .instances_denoised
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(reason) => {
                    give_up(&node, s, &reason);
                    if let Some(p) = paired {
                        give_up(&node, p, &reason);
                    }
                }
            }
        }
        let waiting = complete
            .iter()
            .filter(|s| !done.contains(&s.uid) && s.contrast.is_some())
            .count();
        node.stats
            .series_waiting
            .store(waiting as u64, Ordering::Relaxed);
        // Series whose every instance has left the spool are forgotten.
        let present: HashSet<&String> = series.iter().map(|s| &s.uid).collect();
        done.retain(|uid| present.contains(uid));
    }
}

/// The received instances, grouped, leaving out those whose results wait in the outbox.
fn scan(
    node: &Node,
    headers: &mut HashMap<PathBuf, Instance>,
    done: &HashSet<String>,
) -> Vec<Series> {
    let received = node.spool.received();
    let in_outbox: HashSet<std::ffi::OsString> = outbox::pending(&node.config.spool)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
        .collect();
    let mut files: Vec<PathBuf> = fs::read_dir(&received)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.') && !in_outbox.contains(n))
        })
        .collect();
    files.sort();
    // `files` is sorted: a lookup per cached header, not a scan of the folder each.
    headers.retain(|p, _| files.binary_search(p).is_ok());
    let mut groups: HashMap<String, Series> = HashMap::new();
    for path in files {
        if !headers.contains_key(&path) {
            match read_header(&path, &node.config.contrasts) {
                Ok(h) if h.multi_frame => {
                    // Its frames join the spool as single instances, read on the next scan.
                    match enhanced::split(&path, &received) {
                        Ok(frames) => {
                            info!(file = %path.display(), frames = frames.len(), "DICOM Enhanced MR instance split into its frames");
                            inc(&node.stats.instances_split);
                        }
                        Err(reason) => set_aside(
                            &node.config.spool,
                            &path,
                            &reason,
                            &node.stats.instances_set_aside,
                        ),
                    }
                    continue;
                }
                Ok(h) => {
                    headers.insert(path.clone(), h);
                }
                Err(reason) => {
                    set_aside(
                        &node.config.spool,
                        &path,
                        &reason,
                        &node.stats.instances_set_aside,
                    );
                    continue;
                }
            }
        }
        let h = &headers[&path];
        if done.contains(&h.series) {
            groups
                .entry(h.series.clone())
                .or_insert_with(|| series_of(h))
                .files
                .push(path);
            continue;
        }
        let s = groups
            .entry(h.series.clone())
            .or_insert_with(|| series_of(h));
        s.last = s.last.max(h.arrived);
        s.files.push(path);
    }
    let mut out: Vec<Series> = groups.into_values().collect();
    out.sort_by(|a, b| a.last.cmp(&b.last).then(a.uid.cmp(&b.uid)));
    out
}

fn series_of(h: &Instance) -> Series {
    Series {
        uid: h.series.clone(),
        study: h.study.clone(),
        frame: h.frame.clone(),
        description: h.description.clone(),
        contrast: h.contrast,
        files: Vec::new(),
        last: h.arrived,
    }
}

/// The header of a spooled instance (its pixels are not read).
fn read_header(path: &Path, markers: &ContrastMarkers) -> Result<Instance, String> {
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = |tag| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
    };
    let required =
        |tag, name: &str| text(tag).ok_or_else(|| format!("{}: no {name}", path.display()));
    let description = text(tags::SERIES_DESCRIPTION).unwrap_or_default();
    let protocol = text(tags::PROTOCOL_NAME).unwrap_or_default();
    let options = text(tags::SCAN_OPTIONS).unwrap_or_default();
    Ok(Instance {
        series: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        study: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        frame: text(tags::FRAME_OF_REFERENCE_UID),
        contrast: classify(markers, &description, &protocol, &options),
        description,
        arrived: fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now()),
        multi_frame: text(tags::SOP_CLASS_UID).as_deref()
            == Some(enhanced::ENHANCED_MR_IMAGE_STORAGE),
    })
}

fn inputs(series: &Series) -> Vec<InputFile> {
    series
        .files
        .iter()
        .map(|p| InputFile {
            path: p.clone(),
            output: PathBuf::from(p.file_name().expect("a spooled file has a name")),
            format: Format::Dicom,
        })
        .collect()
}

/// Denoises a pair, each with the other as guide, into the outbox; the number of instances.
/// A slice its partner series does not cover (one series has more slices, or a slice moved)
/// is denoised by its contrast's single-contrast model, in the same derived series; without
/// that model the pair fails, naming every such slice.
fn guided_pair(
    node: &Node,
    models: &mut Models,
    pd: &Series,
    pdfs: &Series,
    derived: &mut Derived,
) -> Result<usize, String> {
    let (pd_in, pdfs_in) = (inputs(pd), inputs(pdfs));
    let mut staged = Vec::new();
    for (series, ins, partner, contrast) in [
        (pd, &pd_in, &pdfs_in, Contrast::Pd),
        (pdfs, &pdfs_in, &pd_in, Contrast::Pdfs),
    ] {
        let matched = match_guides(ins, partner);
        let (guided, alone) = models
            .for_pair(contrast)
            .expect("guided models are configured");
        let unmatched: Vec<&String> = matched
            .guides
            .iter()
            .filter_map(|g| g.as_ref().err())
            .collect();
        if !unmatched.is_empty() {
            if alone.is_none() {
                let listed: Vec<&str> = unmatched.iter().map(|s| s.as_str()).collect();
                return Err(format!(
                    "{} {} slices without a partner slice and no `{}_alone` model: {}",
                    unmatched.len(),
                    contrast.name(),
                    contrast.name(),
                    listed.join("; ")
                ));
            }
            for reason in &unmatched {
                info!(series = %series.uid, %reason, "DICOM slice without a partner slice: denoised alone by the single-contrast model");
            }
            node.stats
                .instances_unmatched
                .fetch_add(unmatched.len() as u64, Ordering::Relaxed);
        }
        let guides: Vec<Option<PathBuf>> = matched.guides.into_iter().map(Result::ok).collect();
        let mut models = Staging::Pair {
            guided,
            alone,
            guides: &guides,
        };
        staged.push((series, stage(node, &mut models, series, ins, derived)?));
    }
    let n = staged.iter().map(|(s, _)| s.files.len()).sum();
    for (series, dir) in staged {
        publish(node, series, &dir)?;
    }
    Ok(n)
}

/// Denoises a series on its own into the outbox.
fn alone(
    node: &Node,
    model: &mut Denoiser,
    series: &Series,
    derived: &mut Derived,
) -> Result<usize, String> {
    let dir = stage(
        node,
        &mut Staging::Alone(model),
        series,
        &inputs(series),
        derived,
    )?;
    publish(node, series, &dir)?;
    Ok(series.files.len())
}

/// The models a series is staged with.
enum Staging<'a> {
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

/// The derived series UID of each series denoised lately, so instances of it that come
/// later join it.
#[derive(Default)]
struct Derived(HashMap<String, (String, Instant)>);

impl Derived {
    fn knows(&self, series: &str) -> bool {
        self.0.contains_key(series)
    }

    fn job(&self, series: &str) -> FileJob {
        let known = self
            .0
            .get(series)
            .map(|(uid, _)| (series.to_string(), uid.clone()));
        FileJob::with_series(known.into_iter().collect())
    }

    fn remember(&mut self, job: FileJob) {
        let now = Instant::now();
        for (series, uid) in job.into_series() {
            self.0.insert(series, (uid, now));
        }
    }

    fn forget_older_than(&mut self, age: Duration) {
        self.0.retain(|_, (_, at)| at.elapsed() < age);
    }
}

/// Writes a series' derived instances into a staging folder of the outbox.
fn stage(
    node: &Node,
    models: &mut Staging,
    series: &Series,
    inputs: &[InputFile],
    derived: &mut Derived,
) -> Result<PathBuf, String> {
    let dir = outbox::dir(&node.config.spool).join(format!(".staging-{}", series.uid));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut job = derived.job(&series.uid);
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
        job.denoise_file(model, input, guide, &dir, None)
            .map_err(|e| e.to_string())?;
    }
    derived.remember(job);
    Ok(dir)
}

/// Moves a staged series into the outbox whole.
fn publish(node: &Node, series: &Series, staged: &Path) -> Result<(), String> {
    let to = outbox::dir(&node.config.spool).join(&series.uid);
    fs::rename(staged, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    info!(series = %series.uid, instances = series.files.len(), "DICOM derived series in the outbox");
    Ok(())
}

/// Sets a series' received instances aside in `failed/` with the reason.
fn give_up(node: &Node, series: &Series, reason: &str) {
    warn!(series = %series.uid, %reason, "DICOM series not denoised: set aside in failed/");
    for file in &series.files {
        set_aside(
            &node.config.spool,
            file,
            reason,
            &node.stats.instances_set_aside,
        );
    }
}
