//! The execution providers a [`crate::Denoiser`] may run on, in the order it tries them.
//!
//! A deployment names an ordered list (`tensorrt,cuda,cpu`): TensorRT is fastest once its
//! engine is built, CUDA covers what TensorRT cannot, and the CPU always works. The list is
//! parsed once at the edge (CLI flag or daemon config) into these types.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crossdenoise_image::Error as ImageError;
use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::SessionBuilder;
use serde::{Deserialize, Serialize};

use crate::onnx_runtime::OnnxRuntime;
use crate::{Error, Result};

/// Which provider, without its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[serde(rename = "tensorrt")]
    TensorRt,
    Cuda,
    Cpu,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::TensorRt,
        ProviderKind::Cuda,
        ProviderKind::Cpu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::TensorRt => "tensorrt",
            ProviderKind::Cuda => "cuda",
            ProviderKind::Cpu => "cpu",
        }
    }

    /// ONNX Runtime's own name for it, as in its logs and Python API.
    pub fn ort_name(self) -> &'static str {
        match self {
            ProviderKind::TensorRt => "TensorrtExecutionProvider",
            ProviderKind::Cuda => "CUDAExecutionProvider",
            ProviderKind::Cpu => "CPUExecutionProvider",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::Image(ImageError::Invalid {
                    what: "execution provider",
                    reason: format!(
                        "unknown execution provider '{s}' (expected tensorrt, cuda or cpu)"
                    ),
                })
            })
    }
}

/// Every provider's options. Only the providers named in [`ProviderSettings::order`] are
/// used; the others' options are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// Tried first to last; the CPU provider is the last resort whether listed or not.
    pub order: Vec<ProviderKind>,
    /// Fail instead of falling back when a listed provider cannot be used.
    pub strict: bool,
    pub tensorrt: TensorRtOptions,
    pub cuda: CudaOptions,
    pub cpu: CpuOptions,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            order: vec![ProviderKind::Cpu],
            strict: false,
            tensorrt: TensorRtOptions::default(),
            cuda: CudaOptions::default(),
            cpu: CpuOptions::default(),
        }
    }
}

impl ProviderSettings {
    /// Parses a comma-separated order such as `tensorrt,cuda,cpu`.
    pub fn parse_order(list: &str) -> Result<Vec<ProviderKind>> {
        let mut order = Vec::new();
        for name in list.split(',').filter(|n| !n.trim().is_empty()) {
            let kind: ProviderKind = name.parse()?;
            if order.contains(&kind) {
                return Err(Error::Image(ImageError::Invalid {
                    what: "execution provider",
                    reason: format!("'{kind}' is listed twice in '{list}'"),
                }));
            }
            order.push(kind);
        }
        if order.is_empty() {
            return Err(Error::Image(ImageError::Invalid {
                what: "execution provider",
                reason: "the list is empty (expected e.g. tensorrt,cuda,cpu)".into(),
            }));
        }
        Ok(order)
    }

    pub fn validate(&self) -> Result<()> {
        if self.order.is_empty() {
            return Err(Error::Image(ImageError::Invalid {
                what: "execution_providers.order",
                reason: "the list is empty (expected e.g. [\"tensorrt\", \"cuda\", \"cpu\"])"
                    .into(),
            }));
        }
        if self.tensorrt.workspace_mb == 0 {
            return Err(Error::Image(ImageError::Invalid {
                what: "execution_providers.tensorrt.workspace_mb",
                reason: "must be at least 1".into(),
            }));
        }
        if self.cpu.threads == Some(0) {
            return Err(Error::Image(ImageError::Invalid {
                what: "execution_providers.cpu.threads",
                reason: "must be at least 1 (leave it out for one thread per core)".into(),
            }));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TensorRtOptions {
    pub device_id: i32,
    /// Half-precision engines: about twice as fast on tensor cores; the export reports the
    /// error this costs.
    pub fp16: bool,
    /// Where built engines are kept, so only the first start after an update pays the
    /// minutes an engine build takes.
    pub engine_cache: Option<PathBuf>,
    /// TensorRT's builder workspace, in MiB.
    pub workspace_mb: usize,
}

impl Default for TensorRtOptions {
    fn default() -> Self {
        TensorRtOptions {
            device_id: 0,
            fp16: true,
            engine_cache: None,
            workspace_mb: 2048,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CudaOptions {
    pub device_id: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuOptions {
    /// Intra-op threads; `None` lets ONNX Runtime use one per physical core.
    pub threads: Option<usize>,
}

/// A provider that was asked for but not used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    pub provider: ProviderKind,
    pub reason: String,
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "execution provider {} unavailable: {}",
            self.provider, self.reason
        )
    }
}

/// Creates the session on the first provider of the list that works, recording why each
/// earlier one was skipped. A provider can fail at registration (not in this ONNX Runtime
/// build, libraries missing) or only when the session is created (no device): both fall
/// back to the rest of the list.
pub(crate) fn open_session(
    runtime: &OnnxRuntime,
    path: &Path,
    settings: &ProviderSettings,
) -> Result<(Session, ProviderKind, Vec<Fallback>)> {
    let mut order = settings.order.clone();
    if !order.contains(&ProviderKind::Cpu) && !settings.strict {
        order.push(ProviderKind::Cpu);
    }
    let mut fallbacks = Vec::new();
    let mut start = 0;
    loop {
        let mut builder = new_builder(runtime, settings).map_err(|e| Error::Model {
            path: path.into(),
            reason: e,
        })?;
        let mut primary = None;
        for &kind in &order[start..] {
            match register(&mut builder, kind, settings) {
                Ok(()) => {
                    primary.get_or_insert(kind);
                }
                Err(reason) => {
                    if settings.strict {
                        return Err(Error::Provider {
                            provider: kind,
                            reason,
                        });
                    }
                    if primary.is_none() {
                        start += 1;
                    }
                    // A retry after a failed session re-registers the rest of the list; a
                    // provider is reported once.
                    if !fallbacks.iter().any(|f: &Fallback| f.provider == kind) {
                        fallbacks.push(Fallback {
                            provider: kind,
                            reason,
                        });
                    }
                }
            }
        }
        let primary = primary.unwrap_or(ProviderKind::Cpu);
        match builder.commit_from_file(path) {
            Ok(session) => return Ok((session, primary, fallbacks)),
            Err(e) if primary != ProviderKind::Cpu && start + 1 < order.len() => {
                if settings.strict {
                    return Err(Error::Provider {
                        provider: primary,
                        reason: format!("session creation failed: {e}"),
                    });
                }
                fallbacks.push(Fallback {
                    provider: primary,
                    reason: format!("session creation failed: {e}"),
                });
                start = order.iter().position(|&k| k == primary).expect("listed") + 1;
            }
            Err(e) => {
                return Err(Error::Model {
                    path: path.into(),
                    reason: format!("not a model ONNX Runtime can load: {e}"),
                });
            }
        }
    }
}

fn new_builder(
    runtime: &OnnxRuntime,
    settings: &ProviderSettings,
) -> std::result::Result<SessionBuilder, String> {
    let builder = Session::builder(runtime.env()).map_err(|e| e.to_string())?;
    match settings.cpu.threads {
        Some(t) => builder.with_intra_threads(t).map_err(|e| e.to_string()),
        None => Ok(builder),
    }
}

/// Registers one provider; the error is the reason it cannot be used.
fn register(
    builder: &mut SessionBuilder,
    kind: ProviderKind,
    settings: &ProviderSettings,
) -> std::result::Result<(), String> {
    let not_built = || {
        format!(
            "{} is not in this ONNX Runtime build; install the GPU build with \
             `bash scripts/install-ort.sh --gpu` (it also needs the CUDA, cuDNN and TensorRT \
             libraries)",
            kind.ort_name()
        )
    };
    let result = match kind {
        ProviderKind::TensorRt => {
            if !ep::TensorRT::is_available().unwrap_or(false) {
                return Err(not_built());
            }
            let o = &settings.tensorrt;
            let mut trt = ep::TensorRT::default()
                .with_device_id(o.device_id)
                .with_fp16(o.fp16)
                .with_max_workspace_size(o.workspace_mb * 1024 * 1024);
            if let Some(cache) = &o.engine_cache {
                std::fs::create_dir_all(cache)
                    .map_err(|e| format!("engine cache {}: {e}", cache.display()))?;
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(cache.display().to_string())
                    .with_timing_cache(true)
                    .with_timing_cache_path(cache.display().to_string());
            }
            trt.register(builder)
        }
        ProviderKind::Cuda => {
            if !ep::CUDA::is_available().unwrap_or(false) {
                return Err(not_built());
            }
            ep::CUDA::default()
                .with_device_id(settings.cuda.device_id)
                .register(builder)
        }
        ProviderKind::Cpu => ep::CPU::default()
            // The arena keeps the largest inference's memory for reuse; tiles bound that
            // (measured: arena off was slower and peaked higher).
            .with_arena_allocator(true)
            .register(builder),
    };
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_parses_and_rejects_typos_and_repeats() {
        assert_eq!(
            ProviderSettings::parse_order("tensorrt, CUDA,cpu").unwrap(),
            vec![
                ProviderKind::TensorRt,
                ProviderKind::Cuda,
                ProviderKind::Cpu
            ]
        );
        let e = ProviderSettings::parse_order("tensort,cpu")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'tensort'") && e.contains("expected tensorrt, cuda or cpu"),
            "{e}"
        );
        let e = ProviderSettings::parse_order("cpu,cpu")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listed twice"), "{e}");
        assert!(ProviderSettings::parse_order(" , ").is_err());
    }

    #[test]
    fn settings_json_is_strict() {
        let s: ProviderSettings =
            serde_json::from_str(r#"{"order": ["cuda", "cpu"], "cuda": {"device_id": 1}}"#)
                .unwrap();
        assert_eq!(s.order, vec![ProviderKind::Cuda, ProviderKind::Cpu]);
        assert_eq!(s.cuda.device_id, 1);
        assert!(s.tensorrt.fp16);
        let e = serde_json::from_str::<ProviderSettings>(r#"{"tensorrt": {"fp61": true}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fp61"), "{e}");
    }
}
