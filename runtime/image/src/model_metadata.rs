//! What an exported model says about itself in its ONNX `metadata_props`.
//!
//! The graph alone does not say how its input must be prepared: a model trained on
//! 99.5th-percentile-normalised slices gives nonsense on raw scanner units, and one with
//! four pooling levels needs sizes that are multiples of 16. Export writes these keys and the
//! runtime reads them, both through this module, so the two cannot drift apart.

use std::collections::HashMap;

use crate::{Error, Normalization, Result};

/// Prefix of every key, so the project's keys stand apart from other tools' in the file.
pub const PREFIX: &str = "crossdenoise.";

pub mod keys {
    pub const FROM: &str = "crossdenoise.from";
    pub const TO: &str = "crossdenoise.to";
    pub const FROM_NAME: &str = "crossdenoise.from_name";
    pub const TO_NAME: &str = "crossdenoise.to_name";
    pub const DEPTH: &str = "crossdenoise.depth";
    pub const BASE_CHANNELS: &str = "crossdenoise.base_channels";
    pub const PERCENTILE: &str = "crossdenoise.normalization.percentile";
    pub const CLAMP_MAX: &str = "crossdenoise.normalization.clamp_max";
    pub const SIZE_MULTIPLE: &str = "crossdenoise.size_multiple";
    pub const CONFIG_HASH: &str = "crossdenoise.config_hash";
    pub const VERSION: &str = "crossdenoise.version";
    pub const KIND: &str = "crossdenoise.kind";
    pub const GUIDE: &str = "crossdenoise.guide";
    pub const GUIDE_NAME: &str = "crossdenoise.guide_name";
    pub const GUIDE_PERCENTILE: &str = "crossdenoise.guide.normalization.percentile";
    pub const GUIDE_CLAMP_MAX: &str = "crossdenoise.guide.normalization.clamp_max";
    pub const RICIAN_CORRECTION: &str = "crossdenoise.rician_correction";
    pub const POSTERIOR: &str = "crossdenoise.posterior";
    pub const NOISE_COILS: &str = "crossdenoise.noise_coils";
    pub const NOISE_LEVELS: &str = "crossdenoise.noise_levels";
}

/// What an exported model does, which decides what it may be given and what its output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// The study's cross path: one contrast synthesised from the other. Its output is an
    /// image of the *other* contrast and must never be served as a denoised input.
    Synthesis,
    /// A denoiser of one contrast that reads the other contrast of the slice as a guide
    /// (inputs `image` and `guide`); its output is the input's contrast.
    Guided,
    /// A denoiser of one contrast on its own (input `image`).
    Single,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Synthesis => "synthesis",
            ModelKind::Guided => "guided",
            ModelKind::Single => "single",
        }
    }

    fn parse(v: &str) -> Option<Self> {
        [ModelKind::Synthesis, ModelKind::Guided, ModelKind::Single]
            .into_iter()
            .find(|k| k.name() == v.trim())
    }
}

/// The contrast a guided model reads beside its input.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideMetadata {
    /// Domain key (`a` / `b`) and name (e.g. `pdfs`).
    pub domain: String,
    pub name: String,
    /// How the guide is normalised (each slice by its own percentile, like the input).
    pub normalization: Normalization,
}

/// The model's preprocessing contract and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetadata {
    /// Domain key (`a` / `b`) of the input contrast, and its name (e.g. `pdfs`).
    pub from: String,
    pub from_name: String,
    /// Domain key and name of the output contrast.
    pub to: String,
    pub to_name: String,
    pub normalization: Normalization,
    /// H and W must be multiples of this (2^depth); other sizes are padded.
    pub size_multiple: usize,
    pub depth: Option<u32>,
    pub base_channels: Option<usize>,
    pub config_hash: Option<String>,
    pub version: Option<String>,
    pub kind: ModelKind,
    /// The second input of a guided model.
    pub guide: Option<GuideMetadata>,
    /// The output is a magnitude's expectation: the runtime removes its Rician bias at the
    /// noise level it estimates from the input slice (`crate::rician`, `crate::noise`).
    pub rician_correction: bool,
    /// The graph also states a prior of each pixel's clean amplitude (two more outputs:
    /// `spread`, `ln(std / sigma)`, and `shift`, the prior mean's shift from the
    /// expectation's amplitude in sigmas), and the runtime returns the posterior mean under
    /// the Rician likelihood of the pixel's own value (`crate::posterior`) instead of the
    /// corrected expectation. Written as `crossdenoise.posterior = rician_shift`.
    pub posterior: bool,
    /// The degrees of freedom, in coils, of the magnitudes the model was trained on: 1
    /// (Rician, written only when above 1) or a root-sum-of-squares array's channel count.
    /// A model learns its noise's floor and spread; served on another distribution it
    /// denoises badly and can carry its guide's findings, so the runtime refuses that.
    pub noise_coils: u32,
    /// How many noise levels the graph reads per slice in its `noise` input
    /// (`crate::noise::INPUT_NOISE`, `[N, K]`): the slice's and, for a guided model, its
    /// guide's; 0 (written only when above 0) for a model without that input.
    pub noise_levels: u32,
}

/// What a caller states for a model that carries no metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssumedMetadata {
    pub normalization: Normalization,
    pub size_multiple: usize,
}

/// The value of `crossdenoise.posterior` of a model whose prior has a spread and a shift.
pub const POSTERIOR_RICIAN: &str = "rician_shift";

impl ModelMetadata {
    /// How many outputs the graph has: the expected magnitude, and the prior's spread and
    /// shift for a model with the posterior step.
    pub fn outputs(&self) -> usize {
        if self.posterior { 3 } else { 1 }
    }

    /// The properties export writes, in a stable order.
    pub fn to_props(&self) -> Vec<(String, String)> {
        let mut props = vec![
            (keys::FROM, self.from.clone()),
            (keys::TO, self.to.clone()),
            (keys::FROM_NAME, self.from_name.clone()),
            (keys::TO_NAME, self.to_name.clone()),
            (keys::PERCENTILE, self.normalization.percentile.to_string()),
            (keys::CLAMP_MAX, self.normalization.clamp_max.to_string()),
            (keys::SIZE_MULTIPLE, self.size_multiple.to_string()),
        ];
        if let Some(d) = self.depth {
            props.push((keys::DEPTH, d.to_string()));
        }
        if let Some(c) = self.base_channels {
            props.push((keys::BASE_CHANNELS, c.to_string()));
        }
        if let Some(h) = &self.config_hash {
            props.push((keys::CONFIG_HASH, h.clone()));
        }
        if let Some(v) = &self.version {
            props.push((keys::VERSION, v.clone()));
        }
        props.push((keys::KIND, self.kind.name().into()));
        if let Some(g) = &self.guide {
            props.push((keys::GUIDE, g.domain.clone()));
            props.push((keys::GUIDE_NAME, g.name.clone()));
            props.push((
                keys::GUIDE_PERCENTILE,
                g.normalization.percentile.to_string(),
            ));
            props.push((keys::GUIDE_CLAMP_MAX, g.normalization.clamp_max.to_string()));
        }
        if self.posterior {
            props.push((keys::POSTERIOR, POSTERIOR_RICIAN.into()));
        }
        if self.rician_correction {
            props.push((keys::RICIAN_CORRECTION, "true".into()));
        }
        if self.noise_coils > 1 {
            props.push((keys::NOISE_COILS, self.noise_coils.to_string()));
        }
        if self.noise_levels > 0 {
            props.push((keys::NOISE_LEVELS, self.noise_levels.to_string()));
        }
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Reads the metadata from a model's properties. `Ok(None)` when the model has none of
    /// the project's keys (a foreign model); an error when some are there but one is missing
    /// or malformed (a damaged or hand-edited export).
    // Long: one parse per key, in the order `to_props` writes them.
    pub fn from_props(props: &HashMap<String, String>) -> Result<Option<Self>> {
        if !props.keys().any(|k| k.starts_with(PREFIX)) {
            return Ok(None);
        }
        let get = |key: &'static str| {
            props.get(key).cloned().ok_or_else(|| Error::Invalid {
                what: "model metadata",
                reason: format!("key '{key}' is missing"),
            })
        };
        fn parse<T: std::str::FromStr>(key: &'static str, v: String) -> Result<T> {
            v.trim().parse().map_err(|_| Error::Invalid {
                what: "model metadata",
                reason: format!("key '{key}' has a malformed value '{v}'"),
            })
        }
        let opt = |key: &'static str| props.get(key).cloned();
        let (from, to) = (get(keys::FROM)?, get(keys::TO)?);
        // Models exported before the kind was written are the cross path (or, from a
        // contrast to itself, a denoiser of that contrast).
        let kind = match opt(keys::KIND) {
            Some(v) => ModelKind::parse(&v).ok_or_else(|| Error::Invalid {
                what: "model metadata",
                reason: format!(
                    "key '{}' has an unknown value '{v}' (expected synthesis, guided or single)",
                    keys::KIND
                ),
            })?,
            None if from == to => ModelKind::Single,
            None => ModelKind::Synthesis,
        };
        let guide = match opt(keys::GUIDE) {
            Some(domain) => Some(GuideMetadata {
                domain,
                name: opt(keys::GUIDE_NAME).unwrap_or_default(),
                normalization: Normalization {
                    percentile: parse(keys::GUIDE_PERCENTILE, get(keys::GUIDE_PERCENTILE)?)?,
                    clamp_max: parse(keys::GUIDE_CLAMP_MAX, get(keys::GUIDE_CLAMP_MAX)?)?,
                },
            }),
            None => None,
        };
        if (kind == ModelKind::Guided) != guide.is_some() {
            return Err(Error::Invalid {
                what: "model metadata",
                reason: format!(
                    "a {} model {} key '{}'",
                    kind.name(),
                    if guide.is_some() {
                        "must not have the"
                    } else {
                        "needs the"
                    },
                    keys::GUIDE
                ),
            });
        }
        let rician_correction = match opt(keys::RICIAN_CORRECTION).as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(Error::Invalid {
                    what: "model metadata",
                    reason: format!(
                        "key '{}' has a malformed value '{v}' (expected true or false)",
                        keys::RICIAN_CORRECTION
                    ),
                });
            }
        };
        let posterior = match opt(keys::POSTERIOR).as_deref().map(str::trim) {
            None => false,
            Some(POSTERIOR_RICIAN) => true,
            Some("rician") => {
                return Err(Error::Invalid {
                    what: "model metadata",
                    reason: format!(
                        "key '{}' is 'rician': an export of an earlier version, whose prior has \
                         no shift output; export the run again with this build",
                        keys::POSTERIOR
                    ),
                });
            }
            Some(v) => {
                return Err(Error::Invalid {
                    what: "model metadata",
                    reason: format!(
                        "key '{}' has an unknown value '{v}' (this build knows \
                         '{POSTERIOR_RICIAN}')",
                        keys::POSTERIOR
                    ),
                });
            }
        };
        if posterior && kind == ModelKind::Synthesis {
            return Err(Error::Invalid {
                what: "model metadata",
                reason: format!(
                    "a synthesis model has no posterior step (key '{}')",
                    keys::POSTERIOR
                ),
            });
        }
        let meta = ModelMetadata {
            kind,
            guide,
            rician_correction,
            posterior,
            from,
            to,
            from_name: opt(keys::FROM_NAME).unwrap_or_default(),
            to_name: opt(keys::TO_NAME).unwrap_or_default(),
            normalization: Normalization {
                percentile: parse(keys::PERCENTILE, get(keys::PERCENTILE)?)?,
                clamp_max: parse(keys::CLAMP_MAX, get(keys::CLAMP_MAX)?)?,
            },
            size_multiple: parse(keys::SIZE_MULTIPLE, get(keys::SIZE_MULTIPLE)?)?,
            depth: opt(keys::DEPTH)
                .map(|v| parse(keys::DEPTH, v))
                .transpose()?,
            base_channels: opt(keys::BASE_CHANNELS)
                .map(|v| parse(keys::BASE_CHANNELS, v))
                .transpose()?,
            config_hash: opt(keys::CONFIG_HASH),
            version: opt(keys::VERSION),
            noise_coils: opt(keys::NOISE_COILS)
                .map(|v| parse(keys::NOISE_COILS, v))
                .transpose()?
                .unwrap_or(1),
            noise_levels: opt(keys::NOISE_LEVELS)
                .map(|v| parse(keys::NOISE_LEVELS, v))
                .transpose()?
                .unwrap_or(0),
        };
        if meta.noise_coils == 0 {
            return Err(Error::Invalid {
                what: "model metadata",
                reason: format!("key '{}' must be at least 1", keys::NOISE_COILS),
            });
        }
        meta.normalization.validate()?;
        if let Some(g) = &meta.guide {
            g.normalization.validate()?;
        }
        if meta.size_multiple == 0 {
            return Err(Error::Invalid {
                what: "model metadata",
                reason: format!("key '{}' must be at least 1", keys::SIZE_MULTIPLE),
            });
        }
        Ok(Some(meta))
    }

    /// Metadata for a model without any, from what the caller states.
    pub fn assumed(a: AssumedMetadata) -> Self {
        ModelMetadata {
            from: "?".into(),
            from_name: String::new(),
            to: "?".into(),
            to_name: String::new(),
            normalization: a.normalization,
            size_multiple: a.size_multiple,
            depth: None,
            base_channels: None,
            config_hash: None,
            version: None,
            kind: ModelKind::Single,
            guide: None,
            rician_correction: false,
            posterior: false,
            noise_coils: 1,
            noise_levels: 0,
        }
    }

    /// What the model does, for logs and reports: `pdfs (b) -> pd (a), contrast synthesis`,
    /// `pd (a) denoiser guided by pdfs (b)`, `pd (a) denoiser`.
    pub fn path_label(&self) -> String {
        let side = |name: &str, key: &str| {
            if name.is_empty() {
                key.to_string()
            } else {
                format!("{name} ({key})")
            }
        };
        let to = side(&self.to_name, &self.to);
        match (&self.kind, &self.guide) {
            (ModelKind::Synthesis, _) => format!(
                "{} -> {to}, contrast synthesis",
                side(&self.from_name, &self.from)
            ),
            (_, Some(g)) => format!("{to} denoiser guided by {}", side(&g.name, &g.domain)),
            (_, None) => format!("{to} denoiser"),
        }
    }

    /// The name of the contrast the output shows (e.g. `pd`; the key when unnamed).
    pub fn output_contrast(&self) -> &str {
        if self.to_name.is_empty() {
            &self.to
        } else {
            &self.to_name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModelMetadata {
        ModelMetadata {
            from: "b".into(),
            from_name: "pdfs".into(),
            to: "a".into(),
            to_name: "pd".into(),
            normalization: Normalization::default(),
            size_multiple: 16,
            depth: Some(4),
            base_channels: Some(32),
            config_hash: Some("abc".into()),
            version: Some("0.1.0".into()),
            kind: ModelKind::Synthesis,
            guide: None,
            rician_correction: false,
            posterior: false,
            noise_coils: 1,
            noise_levels: 0,
        }
    }

    fn guided() -> ModelMetadata {
        ModelMetadata {
            from: "a".into(),
            from_name: "pd".into(),
            kind: ModelKind::Guided,
            guide: Some(GuideMetadata {
                domain: "b".into(),
                name: "pdfs".into(),
                normalization: Normalization::default(),
            }),
            rician_correction: true,
            posterior: true,
            ..sample()
        }
    }

    #[test]
    fn props_round_trip() {
        let m = sample();
        let props: HashMap<_, _> = m.to_props().into_iter().collect();
        assert_eq!(ModelMetadata::from_props(&props).unwrap(), Some(m));
        assert_eq!(ModelMetadata::from_props(&HashMap::new()).unwrap(), None);
        let g = guided();
        let props: HashMap<_, _> = g.to_props().into_iter().collect();
        assert!(
            !props.contains_key(keys::NOISE_COILS) && !props.contains_key(keys::NOISE_LEVELS),
            "one coil and no noise input are not written"
        );
        assert_eq!(ModelMetadata::from_props(&props).unwrap(), Some(g.clone()));
        // A model trained on 8-coil magnitudes says so, and one that reads two noise levels;
        // a coil count of 0 is refused by name.
        let coils = ModelMetadata {
            noise_coils: 8,
            noise_levels: 2,
            ..g
        };
        let mut props: HashMap<_, _> = coils.to_props().into_iter().collect();
        assert_eq!(props[keys::NOISE_COILS], "8");
        assert_eq!(props[keys::NOISE_LEVELS], "2");
        assert_eq!(ModelMetadata::from_props(&props).unwrap(), Some(coils));
        props.insert(keys::NOISE_COILS.into(), "0".into());
        let err = ModelMetadata::from_props(&props).unwrap_err().to_string();
        assert!(err.contains(keys::NOISE_COILS), "{err}");
    }

    #[test]
    fn models_from_before_the_kind_key_are_read_by_their_path() {
        let mut props: HashMap<_, _> = sample().to_props().into_iter().collect();
        props.remove(keys::KIND);
        let m = ModelMetadata::from_props(&props).unwrap().unwrap();
        assert_eq!(m.kind, ModelKind::Synthesis);
        props.insert(keys::FROM.into(), "a".into());
        let m = ModelMetadata::from_props(&props).unwrap().unwrap();
        assert_eq!(m.kind, ModelKind::Single);
    }

    #[test]
    fn a_guided_model_without_its_guide_is_refused() {
        let mut props: HashMap<_, _> = guided().to_props().into_iter().collect();
        props.remove(keys::GUIDE);
        let e = ModelMetadata::from_props(&props).unwrap_err().to_string();
        assert!(e.contains("needs the key 'crossdenoise.guide'"), "{e}");
        let mut props: HashMap<_, _> = guided().to_props().into_iter().collect();
        props.insert(keys::KIND.into(), "denoiser".into());
        let e = ModelMetadata::from_props(&props).unwrap_err().to_string();
        assert!(e.contains("unknown value 'denoiser'"), "{e}");
    }

    #[test]
    fn damaged_metadata_names_the_key() {
        let mut props: HashMap<_, _> = sample().to_props().into_iter().collect();
        props.insert(keys::SIZE_MULTIPLE.into(), "sixteen".into());
        let e = ModelMetadata::from_props(&props).unwrap_err().to_string();
        assert!(
            e.contains(keys::SIZE_MULTIPLE) && e.contains("sixteen"),
            "{e}"
        );
        props.remove(keys::SIZE_MULTIPLE);
        let e = ModelMetadata::from_props(&props).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
