//! What the node remembers of the series it denoised lately, for their late instances (a
//! slow link, a scanner still reconstructing, a resend): the derived series they join, and
//! for a pair the partner series' slices, kept as hard links under `<spool>/kept/<series>/`
//! so that a late slice is denoised with its partner slice as guide — as it would have
//! been had it come with its series — after the originals have left the spool. Remembered
//! for `pair_wait_s` after the series' last denoising; a restart forgets it all (late
//! instances are then a series of their own).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossdenoise_runtime::denoise_files::FileJob;
use tracing::warn;

/// Where a paired series' slices are kept for its partner's late instances.
const KEPT: &str = "kept";

struct Record {
    /// The derived series' UID.
    uid: String,
    at: Instant,
    /// The series it was paired with, if any.
    partner: Option<String>,
}

/// The derived series UID (and partner) of each series denoised lately.
pub(super) struct Derived {
    records: HashMap<String, Record>,
    kept: PathBuf,
    /// Late instances found with a slice no partner slice covers (and no single-contrast
    /// model), by how many of their own and their partner's slices were matched then: they
    /// wait for a partner, and are matched again only once either number has changed,
    /// not on every look at the spool.
    uncovered: HashMap<String, (usize, usize)>,
}

impl Derived {
    /// Nothing remembered; kept slices of an earlier run (whose records are gone) removed.
    pub(super) fn new(spool: &Path) -> Self {
        let kept = spool.join(KEPT);
        let _ = fs::remove_dir_all(&kept);
        Derived {
            records: HashMap::new(),
            kept,
            uncovered: HashMap::new(),
        }
    }

    pub(super) fn knows(&self, series: &str) -> bool {
        self.records.contains_key(series)
    }

    pub(super) fn job(&self, series: &str, series_number_offset: i64) -> FileJob {
        let known = self
            .records
            .get(series)
            .map(|r| (series.to_string(), r.uid.clone()));
        FileJob::with_series(known.into_iter().collect()).series_number_offset(series_number_offset)
    }

    pub(super) fn remember(&mut self, job: FileJob) {
        let now = Instant::now();
        for (series, uid) in job.into_series() {
            let record = self.records.entry(series).or_insert(Record {
                uid: String::new(),
                at: now,
                partner: None,
            });
            record.uid = uid;
            record.at = now;
        }
    }

    /// Notes that `a` and `b` were denoised as a pair, and keeps each one's `files` (linked,
    /// not copied) as guides for the other's late instances.
    pub(super) fn pair(&mut self, a: (&str, &[PathBuf]), b: (&str, &[PathBuf])) {
        for ((series, files), partner) in [(a, b.0), (b, a.0)] {
            if let Some(record) = self.records.get_mut(series) {
                record.partner = Some(partner.to_string());
            }
            self.keep(series, files);
        }
    }

    /// Keeps `files` of `series` beside those kept before (late instances of a pair's
    /// series guide its partner's later ones in turn). A file that cannot be kept leaves
    /// its partner's late slice to the single-contrast model; logged, never an error.
    pub(super) fn keep(&mut self, series: &str, files: &[PathBuf]) {
        let dir = self.kept.join(series);
        if let Err(e) = fs::create_dir_all(&dir) {
            warn!(folder = %dir.display(), error = %e, "DICOM slices not kept as guides for late instances");
            return;
        }
        for file in files {
            let to = dir.join(file.file_name().expect("a spooled file has a name"));
            if !to.exists()
                && let Err(e) = fs::hard_link(file, &to)
            {
                warn!(file = %file.display(), error = %e, "DICOM slice not kept as a guide for late instances");
            }
        }
    }

    /// The series `series` was paired with, if it was.
    pub(super) fn partner(&self, series: &str) -> Option<&str> {
        self.records.get(series)?.partner.as_deref()
    }

    /// The kept slices of the series `series` was paired with (none if it was not paired).
    pub(super) fn partner_slices(&self, series: &str) -> Vec<PathBuf> {
        let Some(partner) = self.partner(series) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = fs::read_dir(self.kept.join(partner))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    }

    /// Whether `series` was found uncovered with these numbers of its own and its partner's
    /// slices, so that matching them again would find the same.
    pub(super) fn uncovered_as_before(&self, series: &str, counts: (usize, usize)) -> bool {
        self.uncovered.get(series) == Some(&counts)
    }

    /// Notes that `series` has a slice its partner's `counts.1` slices do not cover.
    pub(super) fn note_uncovered(&mut self, series: &str, counts: (usize, usize)) {
        self.uncovered.insert(series.to_string(), counts);
    }

    /// Forgets the series denoised more than `age` ago, and their kept slices.
    pub(super) fn forget_older_than(&mut self, age: Duration) {
        let kept = &self.kept;
        self.records.retain(|series, r| {
            let keep = r.at.elapsed() < age;
            if !keep {
                let _ = fs::remove_dir_all(kept.join(series));
            }
            keep
        });
        let records = &self.records;
        self.uncovered
            .retain(|series, _| records.contains_key(series));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairs_slices_are_kept_for_its_partner_and_forgotten_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path();
        let (a, b) = (spool.join("a.dcm"), spool.join("b.dcm"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let mut derived = Derived::new(spool);
        for series in ["1.1", "1.2"] {
            derived.remember(FileJob::with_series(
                [(series.to_string(), format!("{series}.9"))].into(),
            ));
        }
        derived.pair(
            ("1.1", std::slice::from_ref(&a)),
            ("1.2", std::slice::from_ref(&b)),
        );
        // The originals leave the spool; their kept links stay.
        fs::remove_file(&a).unwrap();
        let partner = derived.partner_slices("1.2");
        assert_eq!(partner.len(), 1);
        assert_eq!(fs::read(&partner[0]).unwrap(), b"a");
        assert_eq!(derived.partner("1.1"), Some("1.2"));
        assert_eq!(derived.partner_slices("1.3"), Vec::<PathBuf>::new());
        derived.note_uncovered("1.1", (1, 1));
        assert!(derived.uncovered_as_before("1.1", (1, 1)));
        assert!(!derived.uncovered_as_before("1.1", (2, 1)));
        derived.forget_older_than(Duration::ZERO);
        assert!(!derived.knows("1.1"));
        assert!(!derived.uncovered_as_before("1.1", (1, 1)));
        assert!(!spool.join(KEPT).join("1.1").exists());
        // A new run forgets the kept slices of the last.
        derived.keep("1.4", &[b]);
        let _ = Derived::new(spool);
        assert!(!spool.join(KEPT).exists());
    }
}
