//! The DICOM node's models, opened once at start and checked against what their keys
//! promise: `pd` / `pdfs` a guided model of that contrast, `*_alone` a single-contrast
//! one, so a series is never answered with another contrast's model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossdenoise_image::ModelKind;
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime};

use super::config::DicomConfig;
use crate::contrast::Contrast;

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
    pub(super) guided: Option<(Denoiser, Denoiser)>,
    pub(super) alone: HashMap<Contrast, Denoiser>,
}

impl Models {
    pub fn open(
        config: &DicomConfig,
        runtime: &OnnxRuntime,
        options: &DenoiserOptions,
    ) -> Result<Self, ModelsError> {
        let open = |key: &'static str, path: &Path, contrast: Contrast, kind: ModelKind| {
            let mut d = Denoiser::open(runtime, path, options).map_err(|e| ModelsError::Open {
                key,
                source: Box::new(e),
            })?;
            d.set_strength(config.strength.of(contrast.name()))
                .map_err(|e| ModelsError::Open {
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
    pub(super) fn for_pair(
        &mut self,
        contrast: Contrast,
    ) -> Option<(&mut Denoiser, Option<&mut Denoiser>)> {
        let guided = self.guided.as_mut().map(|(pd, pdfs)| match contrast {
            Contrast::Pd => pd,
            Contrast::Pdfs => pdfs,
        })?;
        Some((guided, self.alone.get_mut(&contrast)))
    }
}
