//! Denoising slices with an exported model in ONNX Runtime.
//!
//! A [`Denoiser`] is opened once and kept: opening creates the session, picks the execution
//! provider and runs a warm-up inference (TensorRT builds its engine, CUDA allocates its
//! arena), so the first scanner image does not pay for any of that. Each call then
//! normalises and reflect-pads the slices straight into one reused input buffer, runs the
//! session, and crops and rescales the output back to the input's size and units.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4, ArrayView2, ArrayView4, ArrayViewMut2};
use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::SessionBuilder;
use ort::value::{TensorElementType, TensorRef};

use crate::execution_provider::{Fallback, ProviderKind, ProviderSettings};
use crate::model_metadata::{AssumedMetadata, ModelMetadata};
use crate::onnx_runtime::OnnxRuntime;
use crate::{Error, NormScale, Padding, Result};

/// How to open a model.
#[derive(Debug, Clone)]
pub struct DenoiserOptions {
    pub providers: ProviderSettings,
    /// Used only for a model that carries no metadata of its own; such a model is refused
    /// without it, because guessing the normalisation gives plausible-looking wrong images.
    pub assume: Option<AssumedMetadata>,
    /// Shape `[N, H, W]` of the warm-up inference (rounded up to the size multiple); `None`
    /// skips it. TensorRT builds an engine per input shape, so a deployment warms up with
    /// the scanner's matrix size.
    pub warmup: Option<[usize; 3]>,
}

impl Default for DenoiserOptions {
    fn default() -> Self {
        DenoiserOptions {
            providers: ProviderSettings::default(),
            assume: None,
            warmup: Some([1, 64, 64]),
        }
    }
}

/// An open model, ready to denoise.
pub struct Denoiser {
    session: Session,
    path: PathBuf,
    metadata: ModelMetadata,
    has_metadata: bool,
    provider: ProviderKind,
    fallbacks: Vec<Fallback>,
    input_name: String,
    /// The model input, `[N, 1, H, W]` row-major, reused across calls.
    input: Vec<f32>,
    /// Scratch for the percentile selection, reused across slices.
    scratch: Vec<f32>,
}

impl std::fmt::Debug for Denoiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denoiser")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl Denoiser {
    pub fn open(runtime: &OnnxRuntime, path: &Path, options: &DenoiserOptions) -> Result<Self> {
        options.providers.validate()?;
        if !path.is_file() {
            return Err(Error::Model {
                path: path.into(),
                reason: "no such file".into(),
            });
        }
        let (session, provider, fallbacks) = open_session(runtime, path, &options.providers)?;
        let model_err = |reason: String| Error::Model {
            path: path.into(),
            reason,
        };
        let input_name = check_io(&session).map_err(model_err)?;

        let props = read_props(&session).map_err(|e| model_err(e.to_string()))?;
        let found = ModelMetadata::from_props(&props).map_err(|e| model_err(e.to_string()))?;
        let has_metadata = found.is_some();
        let metadata = match (found, options.assume) {
            (Some(m), _) => m,
            (None, Some(a)) => {
                a.normalization.validate()?;
                if a.size_multiple == 0 {
                    return Err(Error::Invalid {
                        what: "size multiple",
                        reason: "must be at least 1".into(),
                    });
                }
                ModelMetadata::assumed(a)
            }
            (None, None) => {
                return Err(model_err(
                    "carries no crossdenoise metadata (normalisation, size multiple); it was not \
                     written by `crossdenoise export`. State them to use it anyway \
                     (--percentile, --clamp-max, --size-multiple)"
                        .into(),
                ));
            }
        };

        let mut denoiser = Denoiser {
            session,
            path: path.into(),
            metadata,
            has_metadata,
            provider,
            fallbacks,
            input_name,
            input: Vec::new(),
            scratch: Vec::new(),
        };
        if let Some([n, h, w]) = options.warmup {
            let m = denoiser.metadata.size_multiple;
            let (h, w) = (h.max(1).div_ceil(m) * m, w.max(1).div_ceil(m) * m);
            let zeros = Array2::<f32>::zeros((h, w));
            let views = vec![zeros.view(); n.max(1)];
            denoiser.denoise_batch(&views).map_err(|e| {
                model_err(format!(
                    "warm-up inference on [{n}, 1, {h}, {w}] failed: {e}"
                ))
            })?;
        }
        Ok(denoiser)
    }

    /// The provider the session ended on (the first of the list that could be used).
    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// The providers that were asked for but skipped, with the reason; callers show these
    /// as warnings.
    pub fn fallbacks(&self) -> &[Fallback] {
        &self.fallbacks
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// False when the model had no metadata and the caller's assumption is in use.
    pub fn has_metadata(&self) -> bool {
        self.has_metadata
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the model as it is on an already normalised and padded `[N, 1, H, W]` input:
    /// no preprocessing, no cropping. For parity checks and benchmarks of the graph itself.
    pub fn infer_raw(&mut self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        let (n, c, h, w) = input.dim();
        let contiguous = input.as_standard_layout();
        let data = run_session(
            &mut self.session,
            &self.path,
            &self.input_name,
            [n, c, h, w],
            contiguous.as_slice().expect("standard layout"),
        )?;
        Ok(Array4::from_shape_vec((n, c, h, w), data).expect("checked shape"))
    }

    /// Denoises one slice of any size; the result has the input's size and units.
    pub fn denoise(&mut self, image: ArrayView2<f32>) -> Result<Array2<f32>> {
        let mut out = self.denoise_batch(&[image])?;
        Ok(out.pop().expect("one output per input"))
    }

    /// Denoises slices of one size in a single inference.
    pub fn denoise_batch(&mut self, images: &[ArrayView2<f32>]) -> Result<Vec<Array2<f32>>> {
        let Some(first) = images.first() else {
            return Ok(Vec::new());
        };
        let (h, w) = first.dim();
        if h == 0 || w == 0 {
            return Err(Error::Shape {
                what: "slice",
                expected: "a non-empty image".into(),
                got: format!("{h}x{w}"),
            });
        }
        if let Some((i, other)) = images.iter().enumerate().find(|(_, im)| im.dim() != (h, w)) {
            return Err(Error::Shape {
                what: "batch",
                expected: format!("every slice {h}x{w} (as slice 0)"),
                got: format!("slice {i} is {}x{}", other.nrows(), other.ncols()),
            });
        }
        let n = images.len();
        let norm = self.metadata.normalization;
        let padding = Padding::to_multiple(h, w, self.metadata.size_multiple)?;
        let (ph, pw) = padding.padded_dim(h, w);
        let plane = ph * pw;

        let mut scales = Vec::with_capacity(n);
        self.input.resize(n * plane, 0.0);
        for (i, (image, chunk)) in images.iter().zip(self.input.chunks_mut(plane)).enumerate() {
            let scale = fit_scale(&norm, *image, &mut self.scratch).map_err(|e| match e {
                Error::Invalid { reason, .. } => Error::Invalid {
                    what: "slice",
                    reason: format!("slice {i}: {reason}"),
                },
                e => e,
            })?;
            let inv = 1.0 / scale.0;
            let hi = norm.clamp_max;
            let out = ArrayViewMut2::from_shape((ph, pw), chunk).expect("chunk is one plane");
            padding.pad_map_into(*image, out, |v| (v * inv).clamp(0.0, hi));
            scales.push(scale);
        }

        let data = run_session(
            &mut self.session,
            &self.path,
            &self.input_name,
            [n, 1, ph, pw],
            &self.input,
        )?;
        Ok(data
            .chunks(plane)
            .zip(scales)
            .map(|(chunk, scale)| {
                let padded = ArrayView2::from_shape((ph, pw), chunk).expect("chunk is one plane");
                padding.crop(padded).mapv(|v| v * scale.0)
            })
            .collect())
    }
}

/// Runs the session on one `[N, 1, H, W]` input and returns its checked output, the same
/// shape, all finite.
fn run_session(
    session: &mut Session,
    path: &Path,
    input_name: &str,
    shape: [usize; 4],
    input: &[f32],
) -> Result<Vec<f32>> {
    let infer = |reason: String| Error::Inference {
        path: path.into(),
        reason,
    };
    let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| infer(e.to_string()))?;
    let outputs = session
        .run(ort::inputs![input_name => tensor])
        .map_err(|e| infer(e.to_string()))?;
    let (out_shape, data) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| infer(e.to_string()))?;
    let want = shape.map(|d| d as i64);
    if **out_shape != want {
        return Err(infer(format!(
            "output shape {:?} does not match the input's {want:?}",
            &**out_shape
        )));
    }
    let plane = shape[2] * shape[3];
    if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
        return Err(infer(format!(
            "output has a non-finite value ({}) at slice {}",
            data[bad],
            bad / plane
        )));
    }
    Ok(data.to_vec())
}

/// [`crate::Normalization::fit`] with a reused scratch buffer (the percentile needs a
/// mutable copy of the values).
fn fit_scale(
    norm: &crate::Normalization,
    image: ArrayView2<f32>,
    scratch: &mut Vec<f32>,
) -> Result<NormScale> {
    scratch.clear();
    scratch.extend(image.iter().copied());
    norm.fit_values(scratch)
}

/// Creates the session on the first provider of the list that works, recording why each
/// earlier one was skipped. A provider can fail at registration (not in this ONNX Runtime
/// build, libraries missing) or only when the session is created (no device): both fall
/// back to the rest of the list.
fn open_session(
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
            .with_arena_allocator(true)
            .register(builder),
    };
    result.map_err(|e| e.to_string())
}

/// Checks the model has one float `[N, 1, H, W]` input and a rank-4 output; returns the
/// input's name.
fn check_io(session: &Session) -> std::result::Result<String, String> {
    let [input] = session.inputs() else {
        return Err(format!(
            "has {} inputs; expected one, `image` [N, 1, H, W]",
            session.inputs().len()
        ));
    };
    let Some(output) = session.outputs().first() else {
        return Err("has no outputs".into());
    };
    for (what, outlet) in [("input", input), ("output", output)] {
        let dtype = outlet.dtype();
        if dtype.tensor_type() != Some(TensorElementType::Float32) {
            return Err(format!(
                "{what} '{}' is {dtype}; expected a float32 tensor [N, 1, H, W]",
                outlet.name()
            ));
        }
        let shape = dtype.tensor_shape().expect("a tensor has a shape");
        if shape.len() != 4 || !(shape[1] == 1 || shape[1] == -1) {
            return Err(format!(
                "{what} '{}' has shape {}; expected [N, 1, H, W] (rank 4, one channel)",
                outlet.name(),
                show_shape(shape)
            ));
        }
    }
    Ok(input.name().to_string())
}

fn show_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

fn read_props(session: &Session) -> ort::Result<HashMap<String, String>> {
    let meta = session.metadata()?;
    let mut props = HashMap::new();
    for key in meta.custom_keys()? {
        if let Some(v) = meta.custom(&key) {
            props.insert(key, v);
        }
    }
    Ok(props)
}
