//! Which contrast an image or a series shows, from the words a protocol gives it
//! (SeriesDescription / SequenceDescription, ProtocolName, ScanOptions). The DICOM node
//! groups series by it; the MRD daemon refuses to answer an image with a model of the other
//! contrast under the name "denoised".

use crate::config::ContrastMarkers;

/// The two contrasts of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contrast {
    Pd,
    Pdfs,
}

impl Contrast {
    pub fn name(self) -> &'static str {
        match self {
            Contrast::Pd => "pd",
            Contrast::Pdfs => "pdfs",
        }
    }

    /// The other contrast of the pair.
    pub fn partner(self) -> Contrast {
        match self {
            Contrast::Pd => Contrast::Pdfs,
            Contrast::Pdfs => Contrast::Pd,
        }
    }
}

/// A series' contrast from its SeriesDescription, else its ProtocolName, else its
/// ScanOptions (whose defined term `FS` is fat saturation).
pub fn classify(
    markers: &ContrastMarkers,
    description: &str,
    protocol: &str,
    scan_options: &str,
) -> Option<Contrast> {
    let of = |text: &str| {
        let tokens: Vec<String> = text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        let has = |words: &[String]| {
            words
                .iter()
                .any(|w| tokens.iter().any(|t| t.eq_ignore_ascii_case(w)))
        };
        if has(&markers.pdfs) {
            Some(Contrast::Pdfs)
        } else if has(&markers.pd) {
            Some(Contrast::Pd)
        } else {
            None
        }
    };
    of(description)
        .or_else(|| of(protocol))
        .or_else(|| of(scan_options).filter(|c| *c == Contrast::Pdfs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_suppression_wins_and_the_description_comes_first() {
        let m = ContrastMarkers::default();
        let c = |d: &str, p: &str, o: &str| classify(&m, d, p, o);
        assert_eq!(c("PD_TSE_FS_COR", "", ""), Some(Contrast::Pdfs));
        assert_eq!(c("pd_tse_cor", "knee_pdfs_cor", ""), Some(Contrast::Pd));
        assert_eq!(c("PDFS SAG", "", ""), Some(Contrast::Pdfs));
        assert_eq!(c("", "t2_spair_sag", ""), Some(Contrast::Pdfs));
        assert_eq!(c("COR 3MM", "", "FS\\SP"), Some(Contrast::Pdfs));
        assert_eq!(
            c("T1 SAG", "", "PD"),
            None,
            "ScanOptions only says fat saturation"
        );
        assert_eq!(c("T1_TSE_SAG", "", ""), None);
        // A word inside another is no marker: "FSE" is a fast spin echo, not fat-suppressed.
        assert_eq!(c("PD_FSE_COR", "", ""), Some(Contrast::Pd));
    }
}
