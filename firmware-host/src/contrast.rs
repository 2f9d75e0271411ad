//! Which contrast an image or a series shows, from the words a protocol gives it
//! (SeriesDescription / SequenceDescription, ProtocolName, ScanOptions). The models were
//! trained for two contrasts only, so a series is theirs only when its words say so
//! positively: a proton-density weighting, with or without fat suppression, and nothing of
//! another weighting or preparation (T1, T2, STIR, contrast agent, Dixon, ...). A
//! `T2_TSE_FS_COR` is not a PDFS with extra words: it is another contrast, and denoising it
//! with the PDFS model would deliver a PDFS-looking image under a T2's name. The DICOM node
//! groups series by the verdict; the MRD daemon refuses to answer an image with a model of
//! another contrast under the name "denoised".

use serde::Deserialize;

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

/// What the words say about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// One of the two contrasts the models denoise.
    Ours(Contrast),
    /// Something else, with the reason (the word and where it was found).
    Other(String),
    /// No word of any weighting: the text says nothing either way.
    Unknown,
}

impl Label {
    pub fn contrast(&self) -> Option<Contrast> {
        match self {
            Label::Ours(c) => Some(*c),
            _ => None,
        }
    }
}

/// `[contrasts]` / `[dicom.contrasts]`: the words that recognise the two contrasts. A word
/// matches a whole token of the text (split at anything not a letter or digit, case
/// ignored) or two neighbouring tokens written together ("FAT SAT" is `FATSAT`, "T 2" is
/// `T2`); "FSE", a fast spin echo, is not "FS".
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ContrastRules {
    /// Proton-density weighting.
    pub pd: Vec<String>,
    /// Fat suppression (with a PD word it makes PDFS).
    pub fat_suppression: Vec<String>,
    /// Words that say both at once.
    pub pdfs: Vec<String>,
    /// Another weighting, preparation or kind of image: a text with one of these is never
    /// PD or PDFS, whatever else it says ("PD_T2_TSE", a dual echo, is not ours).
    pub other: Vec<String>,
    /// A word that takes back the fat-suppression word right after it ("PD_TSE_NO_FS").
    pub negations: Vec<String>,
}

impl Default for ContrastRules {
    /// Siemens (`pd_tse_fs_cor`, `t2_tse_fs`, `tirm`, `t2_de3d_we`), GE (`PD FSE FS`,
    /// `COR PD FAT SAT`, `FRFSE`, `IDEAL`), Philips (`PDW_SPAIR_COR`, `PDW_TSE_SPIR`,
    /// `T2W_TSE`, `mDIXON`, `ProSet`), Canon (`PD FSE FatSat`, `FASE`) protocol names.
    fn default() -> Self {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
        ContrastRules {
            pd: words(&["PD", "PDW", "PDWI", "PROTON", "PROTONDENSITY", "DP"]),
            fat_suppression: words(&[
                "FS",
                "FATSAT",
                "FSAT",
                "FATSUP",
                "FATSUPPRESSED",
                "SPAIR",
                "SPIR",
                "CHESS",
                "WE",
                "PROSET",
                "FATSATURATION",
            ]),
            pdfs: words(&["PDFS", "PDWFS", "PDFATSAT", "PDSPAIR", "PDSPIR", "DPFS"]),
            other: words(&[
                "T1",
                "T1W",
                "T1WI",
                "T1FS",
                "T2",
                "T2W",
                "T2WI",
                "T2FS",
                "T2STAR",
                "T2S",
                "T2MAP",
                "T1MAP",
                "T1RHO",
                "STIR",
                "TIRM",
                "FLAIR",
                "POST",
                "GD",
                "GAD",
                "GADO",
                "CONTRAST",
                "DWI",
                "DIFFUSION",
                "DTI",
                "ADC",
                "TRACE",
                "DIXON",
                "MDIXON",
                "IDEAL",
                "DESS",
                "MEDIC",
                "MERGE",
                "SWI",
                "TOF",
                "CISS",
                "FIESTA",
                "TRUFI",
                "BFFE",
                "GRE",
                "FFE",
                "FSPGR",
                "VIBE",
                "THRIVE",
                "LAVA",
                "MPRAGE",
                "LOCALIZER",
                "LOCALISER",
                "SCOUT",
                "SURVEY",
                "CALIBRATION",
                "MPR",
                "MIP",
                "SUB",
                "SUBTRACTION",
                "INPHASE",
                "OPPPHASE",
                "OUTPHASE",
            ]),
            negations: words(&["NO", "NON", "WO", "WITHOUT", "NOT"]),
        }
    }
}

impl ContrastRules {
    /// The first list that is empty but may not be, by its key.
    pub fn problem(&self) -> Option<&'static str> {
        if self.pd.is_empty() {
            Some("pd")
        } else if self.fat_suppression.is_empty() && self.pdfs.is_empty() {
            Some("fat_suppression")
        } else {
            None
        }
    }

    /// An image's label from its description (SeriesDescription / SequenceDescription),
    /// protocol name and ScanOptions (whose defined term `FS` is fat saturation). The
    /// weighting comes from the first of description and protocol that names one (so an
    /// exam-wide protocol name like "KNEE T1 T2 PD" does not overrule a series' own
    /// description); fat suppression from that text or ScanOptions. A text that says "no
    /// fat suppression" while ScanOptions says FS is not trusted either way.
    pub fn classify(&self, description: &str, protocol: &str, scan_options: &str) -> Label {
        let options_fs = tokens(scan_options).iter().any(|t| t == "FS");
        for (field, text) in [("description", description), ("protocol", protocol)] {
            let words = Words::of(text);
            if let Some(w) = words.find(&self.other) {
                return Label::Other(format!("{w:?} in the {field} {text:?}"));
            }
            let combined = words.find(&self.pdfs).is_some();
            if !combined && words.find(&self.pd).is_none() {
                continue;
            }
            let (fs, negated) = words.fat_suppression(self);
            if negated && options_fs {
                return Label::Other(format!(
                    "the {field} {text:?} says no fat suppression, ScanOptions says FS"
                ));
            }
            let suppressed = combined || fs || (options_fs && !negated);
            return Label::Ours(if suppressed {
                Contrast::Pdfs
            } else {
                Contrast::Pd
            });
        }
        Label::Unknown
    }
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Whether `word` is one of `list` (case ignored).
fn listed(list: &[String], word: &str) -> bool {
    list.iter().any(|l| l.eq_ignore_ascii_case(word))
}

/// A text's tokens, and each neighbouring two written together.
struct Words {
    tokens: Vec<String>,
    /// Every word the text holds: `(index of its first token, word)`.
    all: Vec<(usize, String)>,
}

impl Words {
    fn of(text: &str) -> Self {
        let tokens = tokens(text);
        let joined = tokens.windows(2).map(|w| format!("{}{}", w[0], w[1]));
        let all = tokens
            .iter()
            .cloned()
            .enumerate()
            .chain(joined.enumerate())
            .collect();
        Words { tokens, all }
    }

    fn find(&self, list: &[String]) -> Option<String> {
        self.all
            .iter()
            .find(|(_, w)| listed(list, w))
            .map(|(_, w)| w.clone())
    }

    /// Whether a fat-suppression word stands in the text un-negated, and whether one is
    /// negated.
    fn fat_suppression(&self, rules: &ContrastRules) -> (bool, bool) {
        let (mut plain, mut negated) = (false, false);
        for (i, w) in &self.all {
            if !listed(&rules.fat_suppression, w) {
                continue;
            }
            let before = i.checked_sub(1).map(|j| self.tokens[j].as_str());
            if before.is_some_and(|b| listed(&rules.negations, b)) {
                negated = true;
            } else {
                plain = true;
            }
        }
        (plain, negated)
    }
}

/// `[strength]`: per contrast, 0 to 1, as the vendors' low / medium / high settings: 1
/// serves the denoised image alone, 0.7 keeps 30% of the acquisition's texture.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Strength {
    pub pd: f32,
    pub pdfs: f32,
}

impl Default for Strength {
    fn default() -> Self {
        Strength { pd: 1.0, pdfs: 1.0 }
    }
}

impl Strength {
    /// The strength for a model whose output is `contrast` (a model of another contrast,
    /// such as a synthesis, is served whole).
    pub fn of(&self, contrast: &str) -> f32 {
        match contrast.to_ascii_lowercase().as_str() {
            "pd" => self.pd,
            "pdfs" => self.pdfs,
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(d: &str, p: &str, o: &str) -> Label {
        ContrastRules::default().classify(d, p, o)
    }

    #[test]
    fn pd_and_pdfs_of_each_vendor_are_recognised() {
        for pd in [
            "pd_tse_cor",
            "PD FSE COR",
            "PDW_TSE_SAG",
            "COR PD",
            "pd_tse_sag 3mm",
            "PD_FSE_COR",
        ] {
            assert_eq!(c(pd, "", ""), Label::Ours(Contrast::Pd), "{pd}");
        }
        for pdfs in [
            "pd_tse_fs_cor",
            "PD FSE FS",
            "COR PD FAT SAT",
            "PDW_SPAIR_COR",
            "PDW_TSE_SPIR",
            "PDFS SAG",
            "pd_tse_cor_fatsat",
            "PD FSE FatSat",
        ] {
            assert_eq!(c(pdfs, "", ""), Label::Ours(Contrast::Pdfs), "{pdfs}");
        }
    }

    #[test]
    fn other_weightings_are_not_ours_even_with_fat_suppression() {
        for other in [
            "T2_TSE_FS_COR",
            "T2_TSE_SPAIR_COR",
            "T1_SE_FS_COR_POST",
            "t2_tse_fs",
            "tirm_cor",
            "STIR COR",
            "PD_T2_TSE",
            "T2W_TSE",
            "t2_de3d_we_sag",
            "mDIXON PD",
            "PD FS POST GD",
            "T 2 FS",
        ] {
            assert!(matches!(c(other, "", ""), Label::Other(_)), "{other}");
        }
    }

    #[test]
    fn a_negated_fat_suppression_is_pd() {
        assert_eq!(c("PD_TSE_NO_FS_COR", "", ""), Label::Ours(Contrast::Pd));
        assert_eq!(c("PD without FATSAT", "", ""), Label::Ours(Contrast::Pd));
        // A text that says no fat suppression where ScanOptions says FS is trusted neither way.
        assert!(matches!(c("PD_TSE_NO_FS_COR", "", "FS"), Label::Other(_)));
    }

    #[test]
    fn the_description_comes_first_and_scan_options_add_fat_suppression() {
        assert_eq!(
            c("pd_tse_cor", "knee_pdfs_cor", ""),
            Label::Ours(Contrast::Pd)
        );
        // A protocol name for the whole exam does not overrule the series' own description.
        assert_eq!(
            c("PD FSE COR", "KNEE T1 T2 PD", ""),
            Label::Ours(Contrast::Pd)
        );
        assert_eq!(c("COR 3MM", "pd_tse_cor", ""), Label::Ours(Contrast::Pd));
        assert_eq!(c("COR PD", "", "FS\\SP"), Label::Ours(Contrast::Pdfs));
        // FS without a weighting says nothing of the weighting.
        assert_eq!(c("COR 3MM", "", "FS\\SP"), Label::Unknown);
        assert_eq!(c("", "", ""), Label::Unknown);
        assert!(matches!(c("COR 3MM", "t2_spair_sag", ""), Label::Other(_)));
    }
}
