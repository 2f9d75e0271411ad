//! Partners across connections. A scanner sends the PD and the PDFS series as two
//! acquisitions, usually on two connections minutes apart. A guided model needs the same
//! slice of the partner contrast, so the images of a series that found no partner are kept
//! here (their noisy planes, for `pair_window_s`) under the study they belong to: when the
//! partner series comes, each of its images is denoised with the kept slice as its guide.
//!
//! What a study is comes from the MRD header: its frame of reference (the scanner's patient
//! coordinate system, which both series share), else the patient and the study. A stream
//! whose header names neither pairs within its connection only.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossdenoise_image::dicom::Geometry;

use crate::mrd::Image;
use crate::mrd::worker::Planes;

/// Where a slice lies: its orientation (read and phase directions), position and
/// thickness, or (a stream without positions) its slice number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    pub orientation: [f32; 6],
    pub position: [f32; 3],
    pub thickness: f32,
    pub slice: u16,
}

impl Place {
    pub fn of(image: &Image) -> Self {
        let (read, phase) = (image.header.read_dir, image.header.phase_dir);
        Place {
            orientation: [read[0], read[1], read[2], phase[0], phase[1], phase[2]],
            position: image.header.position,
            thickness: image.header.field_of_view[2],
            slice: image.header.slice,
        }
    }

    /// The same slice by the rule the DICOM node pairs slices by
    /// ([`Geometry::same_slice`]: the same orientation, positions within half a slice
    /// thickness; the study key stands for the frame of reference), or equal slice numbers
    /// when neither image says where it is.
    pub fn same(&self, other: &Place) -> bool {
        if self.position == [0.0; 3] && other.position == [0.0; 3] {
            return self.slice == other.slice;
        }
        self.geometry().same_slice(&other.geometry())
    }

    fn geometry(&self) -> Geometry {
        Geometry {
            frame_of_reference: String::new(),
            orientation: self.orientation.map(f64::from),
            position: self.position.map(f64::from),
            thickness: f64::from(self.thickness.max(f32::EPSILON)),
        }
    }
}

/// The study an MRD stream belongs to, from its XML header: `frame:<frameOfReferenceUID>`,
/// else `study:<patientID>/<studyInstanceUID>`; `None` when the header names neither (or
/// is not XML).
pub fn study_key(header: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(header).ok()?;
    let text = |name: &str| {
        doc.descendants()
            .find(|n| n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    if let Some(frame) = text("frameOfReferenceUID") {
        return Some(format!("frame:{frame}"));
    }
    text("studyInstanceUID")
        .map(|study| format!("study:{}/{study}", text("patientID").unwrap_or("")))
}

struct Entry {
    key: String,
    contrast: String,
    place: Place,
    planes: Planes,
    bytes: usize,
    at: Instant,
}

/// Images kept for partners that come later, oldest first; bounded in time (`window`) and
/// memory (`max_bytes`: the oldest go first beyond it).
pub struct Kept {
    window: Duration,
    max_bytes: usize,
    bytes: usize,
    entries: VecDeque<Entry>,
}

impl Kept {
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        Kept {
            window,
            max_bytes,
            bytes: 0,
            entries: VecDeque::new(),
        }
    }

    /// Keeps `planes` of a `contrast` image of study `key` at `place`, replacing what was
    /// kept for the same slice. Returns how many older images were let go to stay within
    /// `max_bytes` (an image larger than all of it is not kept: 1).
    pub fn keep(&mut self, key: &str, contrast: &str, place: Place, planes: Planes) -> usize {
        self.expire(Instant::now());
        if self.window.is_zero() {
            return 0;
        }
        let bytes = planes.iter().map(|p| p.len() * 4).sum::<usize>();
        if bytes > self.max_bytes {
            return 1;
        }
        if let Some(k) = self
            .entries
            .iter()
            .position(|e| e.key == key && e.contrast == contrast && e.place.same(&place))
        {
            let old = self.entries.remove(k).expect("found");
            self.bytes -= old.bytes;
        }
        let mut dropped = 0;
        while self.bytes + bytes > self.max_bytes {
            let old = self.entries.pop_front().expect("bytes held by entries");
            self.bytes -= old.bytes;
            dropped += 1;
        }
        self.bytes += bytes;
        self.entries.push_back(Entry {
            key: key.into(),
            contrast: contrast.into(),
            place,
            planes,
            bytes,
            at: Instant::now(),
        });
        dropped
    }

    /// The kept `contrast` image of study `key` at `place`, if one is within the window.
    pub fn find(&mut self, key: &str, contrast: &str, place: &Place) -> Option<Planes> {
        self.expire(Instant::now());
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key && e.contrast == contrast && e.place.same(place))
            .map(|e| e.planes.clone())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(e) = self.entries.front() {
            if now.duration_since(e.at) < self.window {
                break;
            }
            self.bytes -= e.bytes;
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    const CORONAL: [f32; 6] = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0];

    fn at(z: f32) -> Place {
        Place {
            orientation: CORONAL,
            position: [0.0, 0.0, z],
            thickness: 3.0,
            slice: 0,
        }
    }

    fn planes(v: f32) -> Planes {
        vec![Array2::from_elem((4, 4), v)]
    }

    #[test]
    fn slices_pair_by_position_or_by_number() {
        let place = |position: [f32; 3], slice| Place {
            orientation: CORONAL,
            position,
            thickness: 3.0,
            slice,
        };
        assert!(place([0.0; 3], 4).same(&place([0.0; 3], 4)));
        assert!(!place([0.0; 3], 4).same(&place([0.0; 3], 5)));
        // Positions decide when given, whatever the numbering.
        assert!(place([1.0, 2.0, 10.0], 1).same(&place([1.0, 2.0, 11.4], 7)));
        assert!(!place([1.0, 2.0, 10.0], 1).same(&place([1.0, 2.0, 11.6], 1)));
        // Another orientation through the same point is another slice.
        let sagittal = Place {
            orientation: [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
            ..place([1.0, 2.0, 10.0], 1)
        };
        assert!(!place([1.0, 2.0, 10.0], 1).same(&sagittal));
    }

    #[test]
    fn the_study_is_the_frame_of_reference_else_patient_and_study() {
        let header = |inner: &str| {
            format!(
                "<?xml version=\"1.0\"?><ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">{inner}</ismrmrdHeader>"
            )
        };
        let both = header(
            "<subjectInformation><patientID>P1</patientID></subjectInformation>\
             <studyInformation><studyInstanceUID>1.2.3</studyInstanceUID></studyInformation>\
             <measurementInformation><frameOfReferenceUID> 1.2.9 </frameOfReferenceUID></measurementInformation>",
        );
        assert_eq!(study_key(&both).as_deref(), Some("frame:1.2.9"));
        let study = header(
            "<subjectInformation><patientID>P1</patientID></subjectInformation>\
             <studyInformation><studyInstanceUID>1.2.3</studyInstanceUID></studyInformation>",
        );
        assert_eq!(study_key(&study).as_deref(), Some("study:P1/1.2.3"));
        assert_eq!(study_key(&header("")), None);
        assert_eq!(study_key("<ismrmrdHeader/>"), None);
        assert_eq!(study_key("not xml <"), None);
    }

    #[test]
    fn kept_images_are_found_by_study_contrast_and_slice_within_the_window() {
        let mut kept = Kept::new(Duration::from_secs(60), 1 << 20);
        assert_eq!(kept.keep("frame:1", "pd", at(0.0), planes(1.0)), 0);
        assert_eq!(kept.keep("frame:1", "pd", at(3.3), planes(2.0)), 0);
        assert_eq!(
            kept.find("frame:1", "pd", &at(3.0)).unwrap()[0][[0, 0]],
            2.0
        );
        assert!(kept.find("frame:1", "pdfs", &at(0.0)).is_none());
        assert!(kept.find("frame:2", "pd", &at(0.0)).is_none());
        assert!(kept.find("frame:1", "pd", &at(9.0)).is_none());
        // The same slice again replaces what was kept.
        kept.keep("frame:1", "pd", at(0.0), planes(5.0));
        assert_eq!(kept.len(), 2);
        assert_eq!(
            kept.find("frame:1", "pd", &at(0.0)).unwrap()[0][[0, 0]],
            5.0
        );

        let mut brief = Kept::new(Duration::from_millis(30), 1 << 20);
        brief.keep("frame:1", "pd", at(0.0), planes(1.0));
        std::thread::sleep(Duration::from_millis(50));
        assert!(brief.find("frame:1", "pd", &at(0.0)).is_none());
        assert!(brief.is_empty());

        // A window of 0 keeps nothing.
        let mut off = Kept::new(Duration::ZERO, 1 << 20);
        off.keep("frame:1", "pd", at(0.0), planes(1.0));
        assert!(off.is_empty());
    }

    #[test]
    fn beyond_max_bytes_the_oldest_go_first() {
        // Room for two 4 x 4 float planes.
        let mut kept = Kept::new(Duration::from_secs(60), 2 * 64);
        kept.keep("frame:1", "pd", at(0.0), planes(1.0));
        kept.keep("frame:1", "pd", at(3.3), planes(2.0));
        assert_eq!(kept.keep("frame:1", "pd", at(6.6), planes(3.0)), 1);
        assert_eq!(kept.len(), 2);
        assert!(kept.find("frame:1", "pd", &at(0.0)).is_none());
        assert!(kept.find("frame:1", "pd", &at(6.6)).is_some());
        // One image larger than the whole budget is not kept at all.
        let big = vec![Array2::from_elem((16, 16), 0.0)];
        assert_eq!(kept.keep("frame:1", "pd", at(9.9), big), 1);
        assert_eq!(kept.len(), 2);
    }
}
