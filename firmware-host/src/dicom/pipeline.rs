//! From received instances to derived ones. The spool's received instances are grouped
//! into series ([`super::series`]); a series is complete once every instance its
//! acquisition announced is in, or once the associations sending it have ended and nothing
//! of it has arrived for `series_stable_s`. A complete PD series and a complete PDFS series
//! of the same patient, study and frame of reference are a pair: each is denoised by its
//! own contrast's guided model with the other as guide, slices matched by geometry. A series
//! whose partner has not come within `pair_wait_s` is denoised alone by its contrast's
//! single model. A series that is not PD or PDFS (T2, STIR, unlabelled, derived) is passed on
//! unchanged or set aside, as `other_series` says; one that mixes contrasts or patients, or
//! that no configured model may take, is set aside in `failed/` with the reason. A fault
//! that may pass (a full disk, an I/O error) sets nothing aside: the series is tried again,
//! after waits that double up to `retry_max_s`. Results go to the outbox as one folder per
//! series, moved there whole, so the outbox never holds half a series and a restart redoes
//! exactly what had not reached it.
//!
//! Runs on a thread of its own: inference is blocking work, and the models stay with it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crossdenoise_image::dicom::DicomSlice;
use crossdenoise_image::fat_signal;
use crossdenoise_image::io::Format;
use crossdenoise_runtime::Denoiser;
use crossdenoise_runtime::denoise_files::{InputFile, MatchedGuides, match_guides};
use tracing::{info, warn};

use super::config::OtherSeries;
use super::derived::Derived;
use super::models::Models;
use super::node::{Node, inc};
use super::outbox::{self, set_aside};
use super::series::{self, Instance, Series};
use super::staging::{Failure, Staging, move_into_outbox, stage, staging};
use crate::contrast::{Contrast, Label};

/// A series waiting to be tried again after a temporary fault.
struct Retry {
    at: Instant,
    wait: Duration,
}

/// What the pipeline remembers between scans.
struct State {
    headers: HashMap<PathBuf, Instance>,
    /// Instances taken (denoised, passed on or set aside), until they leave the spool. By
    /// instance, not by series: instances of a series that come after it was taken are
    /// new work (its late instances), never held back by the ones taken before.
    done: HashSet<PathBuf>,
    waiting_logged: HashSet<String>,
    derived: Derived,
    retry: HashMap<String, Retry>,
}

impl State {
    fn new(spool: &Path) -> Self {
        State {
            headers: HashMap::new(),
            done: HashSet::new(),
            waiting_logged: HashSet::new(),
            derived: Derived::new(spool),
            retry: HashMap::new(),
        }
    }
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
    let mut state = State::new(&node.config.spool);
    while !*stop.borrow() {
        std::thread::sleep(Duration::from_millis(200));
        step(&node, &mut models, &mut state);
    }
}

/// One look at the spool: every complete series that can be taken now is taken.
// Long: the node's rules for a complete series, in the order docs/daemon.md lists them
// (mixed, late, not ours, paired, waiting, alone); one `continue` per rule.
fn step(node: &Node, models: &mut Models, st: &mut State) {
    let all = scan(node, &mut st.headers, &mut st.done);
    let now = SystemTime::now();
    let age = |s: &Series| now.duration_since(s.last).unwrap_or_default();
    let stable = node.config.series_stable();
    let pair_wait = node.config.pair_wait();
    st.derived.forget_older_than(pair_wait);
    let complete: Vec<&Series> = all
        .iter()
        .filter(|s| s.all_announced_in() || (age(s) >= stable && !node.receiving.is_open(&s.uid)))
        .collect();
    // Not taken earlier in this same pass (a partner is taken with its pair).
    let ready = |st: &State, s: &Series| {
        s.files.iter().any(|f| !st.done.contains(f))
            && st.retry.get(&s.uid).is_none_or(|r| r.at <= Instant::now())
    };
    for s in &complete {
        if !ready(st, s) {
            continue;
        }
        if let Some(reason) = &s.mixed {
            settle(node, st, &[s], Err(Failure::Permanent(reason.clone())));
            continue;
        }
        // Late instances of a series denoised within pair_wait_s join its derived series
        // at once, guided by the kept slices of its pair's partner where they cover them.
        // The partner's own late instances, if they came too, guide them as well (once
        // complete: while some are still arriving, this series waits for them).
        let partner_uid = st.derived.partner(&s.uid);
        let partner_arriving = partner_uid.is_some_and(|p| {
            all.iter().any(|a| a.uid == p) && !complete.iter().any(|c| c.uid == p)
        });
        if partner_arriving {
            continue;
        }
        let partner_late: Vec<PathBuf> = partner_uid
            .and_then(|p| complete.iter().find(|c| c.uid == p && ready(st, c)))
            .map(|c| c.files.clone())
            .unwrap_or_default();
        if let Some(contrast) = s.label.contrast().filter(|_| st.derived.knows(&s.uid))
            && let Some(outcome) = late(node, models, s, contrast, &partner_late, &mut st.derived)
        {
            if let Ok(n) = &outcome {
                let n = *n as u64;
                node.stats.instances_late.fetch_add(n, Ordering::Relaxed);
                node.stats
                    .instances_denoised
                    .fetch_add(n, Ordering::Relaxed);
            }
            settle(node, st, &[s], outcome.map(|_| ()));
            continue;
        }
        let contrast = match &s.label {
            Label::Ours(c) => *c,
            other => {
                let why = match other {
                    Label::Other(why) => why.clone(),
                    _ => format!(
                        "no PD or PDFS word in {:?} (SeriesDescription, ProtocolName)",
                        s.description
                    ),
                };
                let outcome = not_ours(node, &[s], &format!("not a PD or PDFS series: {why}"));
                settle(node, st, &[s], outcome);
                continue;
            }
        };
        let partner = complete.iter().find(|p| {
            p.label == Label::Ours(contrast.partner())
                && p.study == s.study
                && p.frame == s.frame
                && p.patient == s.patient
                && p.mixed.is_none()
                && ready(st, p)
        });
        let paired = partner.filter(|_| models.guided.is_some());
        let outcome = match paired {
            Some(p) => {
                let (pd, pdfs) = if contrast == Contrast::Pd {
                    (*s, *p)
                } else {
                    (*p, *s)
                };
                info!(pd = %pd.uid, pdfs = %pdfs.uid, "DICOM series paired: each denoised with the other as its guide");
                let outcome = guided_pair(node, models, pd, pdfs, &mut st.derived);
                if let Ok(n) = &outcome {
                    node.stats.series_paired.fetch_add(2, Ordering::Relaxed);
                    node.stats
                        .instances_denoised
                        .fetch_add(*n as u64, Ordering::Relaxed);
                }
                settle(node, st, &[s, p], outcome.map(|_| ()));
                continue;
            }
            _ if models.guided.is_some() && age(s) < pair_wait => {
                if st.waiting_logged.insert(s.uid.clone()) {
                    info!(series = %s.uid, contrast = contrast.name(), wait_s = node.config.pair_wait_s, "DICOM series complete: waiting for its partner contrast");
                }
                continue;
            }
            _ => match models.alone.get_mut(&contrast) {
                Some(model) => {
                    info!(series = %s.uid, contrast = contrast.name(), "DICOM series without a partner: denoised alone by the single-contrast model");
                    check_lone(node, s, contrast)
                        .and_then(|()| alone(node, model, s, &mut st.derived))
                        .inspect(|n| {
                            inc(&node.stats.series_alone);
                            node.stats
                                .instances_denoised
                                .fetch_add(*n as u64, Ordering::Relaxed);
                        })
                }
                None => Err(Failure::Permanent(format!(
                    "no {} partner within pair_wait_s and no `{}_alone` model",
                    contrast.partner().name(),
                    contrast.name()
                ))),
            },
        };
        settle(node, st, &[s], outcome.map(|_| ()));
    }
    let waiting = complete
        .iter()
        .filter(|s| ready(st, s) && s.label.contrast().is_some())
        .count();
    node.stats
        .series_waiting
        .store(waiting as u64, Ordering::Relaxed);
    let present: HashSet<&String> = all.iter().map(|s| &s.uid).collect();
    st.retry.retain(|uid, _| present.contains(uid));
}

/// Records how `series` went: taken, set aside for good, or to be tried again.
fn settle(node: &Node, st: &mut State, series: &[&Series], outcome: Result<(), Failure>) {
    match outcome {
        Ok(()) => {
            for s in series {
                st.done.extend(s.files.iter().cloned());
                st.retry.remove(&s.uid);
            }
        }
        Err(Failure::Permanent(reason)) => {
            for s in series {
                give_up(node, s, &reason);
                st.done.extend(s.files.iter().cloned());
                st.retry.remove(&s.uid);
            }
        }
        Err(Failure::NotItsContrast(reason)) => {
            for s in series {
                warn!(series = %s.uid, %reason, "DICOM series refused by the output guard");
                node.stats
                    .instances_guard_refused
                    .fetch_add(s.files.len() as u64, Ordering::Relaxed);
            }
            let outcome = not_ours(node, series, &reason);
            settle(node, st, series, outcome);
        }
        Err(Failure::Temporary(reason)) => {
            let max = Duration::from_secs_f64(node.config.retry_max_s);
            for s in series {
                let wait = st
                    .retry
                    .get(&s.uid)
                    .map_or(Duration::from_secs(1), |r| (r.wait * 2).min(max));
                warn!(series = %s.uid, %reason, retry_in_s = wait.as_secs_f64(), "DICOM series not denoised for now: its instances stay in the spool and it is tried again");
                inc(&node.stats.processing_retries);
                st.retry.insert(
                    s.uid.clone(),
                    Retry {
                        at: Instant::now() + wait,
                        wait,
                    },
                );
            }
        }
    }
}

/// The received instances grouped into series, leaving out those taken already and those
/// whose results wait in the outbox. A multi-frame instance is split into its frames (read on the next scan); one that
/// cannot be read is set aside.
fn scan(
    node: &Node,
    headers: &mut HashMap<PathBuf, Instance>,
    done: &mut HashSet<PathBuf>,
) -> Vec<Series> {
    let received = node.spool.received();
    let in_outbox: HashSet<std::ffi::OsString> = outbox::pending(&node.config.spool)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
        .collect();
    let listed: HashSet<PathBuf> = fs::read_dir(&received)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    // Instances taken that have left the spool are forgotten; the rest are not grouped again.
    done.retain(|p| listed.contains(p));
    let mut files: Vec<PathBuf> = listed
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.') && !in_outbox.contains(n))
                && !done.contains(p)
        })
        .collect();
    files.sort();
    // `files` is sorted: a lookup per cached header, not a scan of the folder each.
    headers.retain(|p, _| files.binary_search(p).is_ok());
    let mut read = Vec::with_capacity(files.len());
    for path in files {
        if !headers.contains_key(&path) {
            let header = series::read_header(&path, &node.config.contrasts);
            match header {
                Ok(h) if h.multi_frame => {
                    match super::enhanced::split(&path, &received) {
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
        read.push(path);
    }
    series::group(read.into_iter().map(|p| {
        let h = &headers[&p];
        (p, h)
    }))
}

/// What becomes of series the models must not answer (another contrast, or a pair whose
/// pixels or result disagree with its labels), as `other_series` says.
fn not_ours(node: &Node, series: &[&Series], reason: &str) -> Result<(), Failure> {
    match node.config.other_series {
        OtherSeries::SetAside => Err(Failure::Permanent(reason.to_string())),
        OtherSeries::PassOn => series.iter().try_for_each(|s| pass_on(node, s, reason)),
    }
}

/// Sends a series that is not the models' on unchanged.
fn pass_on(node: &Node, series: &Series, why: &str) -> Result<(), Failure> {
    link_originals(node, series, &series.uid)?;
    info!(series = %series.uid, reason = %why, instances = series.files.len(), "DICOM series not PD or PDFS: passed on unchanged");
    node.stats
        .instances_passed_on
        .fetch_add(series.files.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// A series' received instances, linked (not copied) into the outbox folder `name` whole.
fn link_originals(node: &Node, series: &Series, name: &str) -> Result<(), Failure> {
    let dir = staging(node, name)?;
    for file in &series.files {
        let to = dir.join(file.file_name().expect("a spooled file has a name"));
        if let Err(e) = fs::hard_link(file, &to).or_else(|_| fs::copy(file, &to).map(|_| ())) {
            let _ = fs::remove_dir_all(&dir);
            return Err(Failure::io(&to, e));
        }
    }
    move_into_outbox(node, &dir, name)
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
/// Each series' slices are kept as guides for the other's late instances.
fn guided_pair(
    node: &Node,
    models: &mut Models,
    pd: &Series,
    pdfs: &Series,
    derived: &mut Derived,
) -> Result<usize, Failure> {
    check_content(pd, pdfs)?;
    let (pd_in, pdfs_in) = (inputs(pd), inputs(pdfs));
    let mut staged = Vec::new();
    for (series, ins, partner, contrast) in [
        (pd, &pd_in, &pdfs_in, Contrast::Pd),
        (pdfs, &pdfs_in, &pd_in, Contrast::Pdfs),
    ] {
        let matched = match_guides(ins, partner);
        match stage_guided(node, models, series, ins, matched, contrast, derived) {
            Ok(dir) => staged.push((series, dir)),
            Err(e) => {
                for (_, dir) in &staged {
                    let _ = fs::remove_dir_all(dir);
                }
                return Err(e);
            }
        }
    }
    let n = staged.iter().map(|(s, _)| s.files.len()).sum();
    for (series, dir) in &staged {
        if let Err(e) = publish(node, series, dir) {
            for (_, dir) in &staged {
                let _ = fs::remove_dir_all(dir);
            }
            return Err(e);
        }
    }
    derived.pair((&pd.uid, &pd.files), (&pdfs.uid, &pdfs.files));
    Ok(n)
}

/// Stages `series` (`ins`, of `contrast`) denoised by its guided model with the partner
/// slice `matched` found at its place as guide. A slice the partner does not cover (one
/// series has more slices, or a slice moved) is denoised by its contrast's single-contrast
/// model, in the same derived series; without that model the series fails, naming every
/// such slice.
fn stage_guided(
    node: &Node,
    models: &mut Models,
    series: &Series,
    ins: &[InputFile],
    matched: MatchedGuides,
    contrast: Contrast,
    derived: &mut Derived,
) -> Result<PathBuf, Failure> {
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
            return Err(Failure::Permanent(format!(
                "{} {} slices without a partner slice and no `{}_alone` model: {}",
                unmatched.len(),
                contrast.name(),
                contrast.name(),
                listed.join("; ")
            )));
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
    stage(node, &mut models, series, ins, derived)
}

/// Late instances of a series denoised lately, into its derived series: guided by the kept
/// slices of its pair's partner and the partner's own late instances (`partner_late`), what
/// they would have had had they come with their series; else by the single-contrast model.
/// None when a slice would need the single-contrast model and there is none (the series
/// then waits for a partner like any other: the partner's slices may be on their way); the
/// number of instances otherwise.
fn late(
    node: &Node,
    models: &mut Models,
    series: &Series,
    contrast: Contrast,
    partner_late: &[PathBuf],
    derived: &mut Derived,
) -> Option<Result<usize, Failure>> {
    let mut partner = derived.partner_slices(&series.uid);
    partner.extend(partner_late.iter().cloned());
    let counts = (series.files.len(), partner.len());
    if derived.uncovered_as_before(&series.uid, counts) {
        return None;
    }
    let partner: Vec<InputFile> = partner
        .into_iter()
        .map(|path| InputFile {
            output: PathBuf::from(path.file_name().expect("a kept file has a name")),
            path,
            format: Format::Dicom,
        })
        .collect();
    let ins = inputs(series);
    let matched =
        (!partner.is_empty() && models.guided.is_some()).then(|| match_guides(&ins, &partner));
    let outcome = if let Some(matched) = matched {
        let uncovered = matched.guides.iter().any(|g| g.is_err());
        if uncovered && !models.alone.contains_key(&contrast) {
            derived.note_uncovered(&series.uid, counts);
            return None;
        }
        info!(series = %series.uid, instances = series.files.len(), "DICOM instances after their pair was denoised: guided by the partner's kept slices into their derived series");
        stage_guided(node, models, series, &ins, matched, contrast, derived)
            .and_then(|dir| publish(node, series, &dir))
    } else {
        let model = models.alone.get_mut(&contrast)?;
        info!(series = %series.uid, instances = series.files.len(), "DICOM instances after their series was denoised: denoised alone into its derived series");
        alone(node, model, series, derived).map(|_| ())
    };
    if outcome.is_ok() && !partner.is_empty() {
        derived.keep(&series.uid, &series.files);
    }
    Some(outcome.map(|()| series.files.len()))
}

/// Refuses a pair whose pixels disagree with its labels (fat bright in the PDFS series:
/// [`fat_signal`]), as a series that is not the models'.
fn check_content(pd: &Series, pdfs: &Series) -> Result<(), Failure> {
    fat_signal::check_pair(&bright_shares(pd)?, &bright_shares(pdfs)?)
        .map_err(Failure::NotItsContrast)
}

/// Refuses a series without a partner whose pixels disagree with its label (fat bright in
/// a PDFS series, or missing from a PD one: [`fat_signal::check_series`]), as a series that
/// is not the models'.
fn check_lone(node: &Node, series: &Series, contrast: Contrast) -> Result<(), Failure> {
    let shares = bright_shares(series)?;
    let fat_suppressed = contrast == Contrast::Pdfs;
    fat_signal::check_series(fat_suppressed, &shares, node.config.bright_share)
        .map_err(Failure::NotItsContrast)
}

/// Each slice's share of bright tissue ([`fat_signal::bright_share`]).
fn bright_shares(series: &Series) -> Result<Vec<f64>, Failure> {
    series
        .files
        .iter()
        .map(|f| {
            DicomSlice::read(f)
                .map(|slice| fat_signal::bright_share(slice.image.view()))
                .map_err(|e| Failure::of(e.into()))
        })
        .collect()
}

/// Denoises a series on its own into the outbox.
fn alone(
    node: &Node,
    model: &mut Denoiser,
    series: &Series,
    derived: &mut Derived,
) -> Result<usize, Failure> {
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

/// Moves a staged derived series into the outbox whole; with `forward_originals`, its
/// received instances go too, in a folder sent after it (`<series>~original`).
fn publish(node: &Node, series: &Series, staged: &Path) -> Result<(), Failure> {
    if node.config.forward_originals
        && let Err(e) = link_originals(node, series, &format!("{}~original", series.uid))
    {
        let _ = fs::remove_dir_all(staged);
        return Err(e);
    }
    move_into_outbox(node, staged, &series.uid)?;
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
