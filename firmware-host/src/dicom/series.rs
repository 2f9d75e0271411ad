//! The spool's received instances as series: their headers read once, grouped by
//! SeriesInstanceUID, each series labelled with its contrast, its patient, and whatever
//! makes it unfit to be denoised as one (two contrasts or two patients under one UID).
//!
//! When a series is complete: a sender may pause between slices longer than
//! `series_stable_s` (a slow link, a scanner still reconstructing), so quiet alone does not
//! make a series whole while an association that has been sending it is still open
//! ([`Receiving`]). A series whose instances state how many the acquisition holds
//! (ImagesInAcquisition) is whole as soon as that many are in.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use dicom_dictionary_std::tags;
use tracing::warn;

use crate::contrast::{ContrastRules, Label};

/// A received instance's header fields.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub series: String,
    pub study: String,
    pub frame: Option<String>,
    /// PatientID, and its issuer where given: two series pair only when these agree.
    pub patient: String,
    pub description: String,
    pub label: Label,
    pub arrived: SystemTime,
    /// An Enhanced MR (multi-frame) instance, to be split into its frames first.
    pub multi_frame: bool,
    /// ImagesInAcquisition, where the sender gives it.
    pub expected: Option<usize>,
}

/// A complete or growing series in the spool.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub uid: String,
    pub study: String,
    pub frame: Option<String>,
    pub patient: String,
    pub description: String,
    pub label: Label,
    pub files: Vec<PathBuf>,
    pub last: SystemTime,
    pub expected: Option<usize>,
    /// Why the series cannot be denoised as one, though its instances each could.
    pub mixed: Option<String>,
}

impl Series {
    fn of(h: &Instance) -> Series {
        Series {
            uid: h.series.clone(),
            study: h.study.clone(),
            frame: h.frame.clone(),
            patient: h.patient.clone(),
            description: h.description.clone(),
            label: h.label.clone(),
            files: Vec::new(),
            last: h.arrived,
            expected: h.expected,
            mixed: None,
        }
    }

    fn add(&mut self, path: PathBuf, h: &Instance) {
        self.last = self.last.max(h.arrived);
        self.files.push(path);
        if self.mixed.is_some() {
            return;
        }
        if h.label != self.label {
            self.mixed = Some(format!(
                "one series with two labels: {:?} ({:?}) and {:?} ({:?})",
                self.description, self.label, h.description, h.label
            ));
        } else if h.patient != self.patient {
            self.mixed = Some(format!(
                "one series of two patients: {:?} and {:?}",
                self.patient, h.patient
            ));
        } else if h.study != self.study {
            self.mixed = Some(format!(
                "one series in two studies: {} and {}",
                self.study, h.study
            ));
        }
    }

    /// Whether every instance the acquisition announced is in.
    pub fn all_announced_in(&self) -> bool {
        self.expected.is_some_and(|n| self.files.len() >= n)
    }
}

/// The series that associations still open have sent instances of, with how many such
/// associations: a series is not complete while one of them may still send more.
#[derive(Debug, Default)]
pub struct Receiving(Mutex<HashMap<String, usize>>);

impl Receiving {
    /// Whether an open association has sent instances of `series`.
    pub fn is_open(&self, series: &str) -> bool {
        self.0.lock().expect("not poisoned").contains_key(series)
    }

    /// Notes that an association sends `series` (once per association and series).
    pub fn open(&self, series: &str) {
        *self
            .0
            .lock()
            .expect("not poisoned")
            .entry(series.to_string())
            .or_default() += 1;
    }

    /// The association that sent `series` has ended.
    pub fn close(&self, series: &HashSet<String>) {
        let mut open = self.0.lock().expect("not poisoned");
        for s in series {
            if let Some(n) = open.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    open.remove(s);
                }
            }
        }
    }
}

/// An association's series, closed in [`Receiving`] when it ends however it ends.
pub struct Sending<'a> {
    receiving: &'a Receiving,
    series: HashSet<String>,
}

impl<'a> Sending<'a> {
    pub fn new(receiving: &'a Receiving) -> Self {
        Sending {
            receiving,
            series: HashSet::new(),
        }
    }

    pub fn sent(&mut self, series: &str) {
        if self.series.insert(series.to_string()) {
            self.receiving.open(series);
        }
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.receiving.close(&self.series);
    }
}

/// The header of a spooled instance (its pixels are not read). Arrival is the file's
/// modification time, or now if that lies in the future (a clock set back), so that a
/// series never waits for a moment that is not coming.
pub(crate) fn read_header(path: &Path, rules: &ContrastRules) -> Result<Instance, String> {
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
    let image_type = text(tags::IMAGE_TYPE).unwrap_or_default();
    // A derived image (a reformat, a subtraction, this node's own output sent back) is not
    // what the models were trained on.
    let label = if image_type.to_ascii_uppercase().starts_with("DERIVED") {
        Label::Other(format!("ImageType {image_type:?} is derived"))
    } else {
        rules.classify(&description, &protocol, &options)
    };
    let patient = match text(tags::ISSUER_OF_PATIENT_ID).filter(|i| !i.is_empty()) {
        Some(issuer) => format!("{}^{issuer}", text(tags::PATIENT_ID).unwrap_or_default()),
        None => text(tags::PATIENT_ID).unwrap_or_default(),
    };
    let now = SystemTime::now();
    let modified = fs::metadata(path).and_then(|m| m.modified()).unwrap_or(now);
    if modified > now {
        warn!(file = %path.display(), "DICOM spool file modified in the future: taken as arrived now");
    }
    Ok(Instance {
        series: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        study: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        frame: text(tags::FRAME_OF_REFERENCE_UID),
        patient,
        label,
        description,
        arrived: modified.min(now),
        multi_frame: text(tags::SOP_CLASS_UID).as_deref()
            == Some(super::enhanced::ENHANCED_MR_IMAGE_STORAGE),
        expected: text(tags::IMAGES_IN_ACQUISITION)
            .and_then(|v| v.trim().parse().ok())
            .filter(|n| *n > 0),
    })
}

/// Groups headers (`(path, header)`, in path order) into series, the latest last.
pub(crate) fn group<'a>(instances: impl Iterator<Item = (PathBuf, &'a Instance)>) -> Vec<Series> {
    let mut groups: HashMap<String, Series> = HashMap::new();
    for (path, h) in instances {
        groups
            .entry(h.series.clone())
            .or_insert_with(|| Series::of(h))
            .add(path, h);
    }
    let mut out: Vec<Series> = groups.into_values().collect();
    out.sort_by(|a, b| a.last.cmp(&b.last).then(a.uid.cmp(&b.uid)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contrast::Contrast;

    fn instance(series: &str, patient: &str, label: Label) -> Instance {
        Instance {
            series: series.into(),
            study: "1.2".into(),
            frame: None,
            patient: patient.into(),
            description: String::new(),
            label,
            arrived: SystemTime::UNIX_EPOCH,
            multi_frame: false,
            expected: Some(2),
        }
    }

    #[test]
    fn a_series_with_two_contrasts_or_two_patients_is_marked_mixed() {
        let pd = Label::Ours(Contrast::Pd);
        let pdfs = Label::Ours(Contrast::Pdfs);
        let a = instance("1.1", "P1", pd.clone());
        let b = instance("1.1", "P1", pdfs);
        let c = instance("1.1", "P2", pd.clone());
        let d = instance("1.1", "P1", pd);
        let two_labels = group([("a".into(), &a), ("b".into(), &b)].into_iter());
        assert!(two_labels[0].mixed.as_ref().unwrap().contains("two labels"));
        let two_patients = group([("a".into(), &a), ("c".into(), &c)].into_iter());
        assert!(
            two_patients[0]
                .mixed
                .as_ref()
                .unwrap()
                .contains("two patients")
        );
        let one = group([("a".into(), &a), ("d".into(), &d)].into_iter());
        assert!(one[0].mixed.is_none());
        assert!(one[0].all_announced_in());
        let half = group([("a".into(), &a)].into_iter());
        assert!(!half[0].all_announced_in());
    }

    #[test]
    fn a_series_is_open_until_every_association_sending_it_ends() {
        let receiving = Receiving::default();
        let mut first = Sending::new(&receiving);
        first.sent("1.1");
        first.sent("1.1");
        {
            let mut second = Sending::new(&receiving);
            second.sent("1.1");
        }
        assert!(receiving.is_open("1.1"));
        drop(first);
        assert!(!receiving.is_open("1.1"));
    }
}
