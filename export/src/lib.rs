//! Export of a trained model as a standalone ONNX graph, written from the Burn weights with
//! `onnx-protobuf` and parity-checked in ONNX Runtime before the file is allowed to exist:
//! a guided (inputs `image`, `guide`) or single-contrast denoiser of one contrast, or the
//! study's no_skip cross path (E_from -> z -> D_to), labelled contrast synthesis.
//!
//! The exported graph is what the scanner-side box runs: no skip branch, no training-only
//! node, and metadata that tells the runtime how to prepare its input. A graph that does not
//! reproduce Burn's forward pass within 1e-4 is never written.

pub mod agreement;
pub mod denoiser_graph;
pub mod error;
pub mod graph;
pub mod lower;
pub mod parity;
pub mod source;
pub mod triton;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crossdenoise_image::{GuideMetadata, ModelKind, ModelMetadata, Normalization};
use crossdenoise_train::denoiser::validation::DirectionValidation;
use crossdenoise_train::model::Domain;
use protobuf::Message;

pub use agreement::{ParityCase, ParityReport};
pub use crossdenoise_train::run::checkpoint::Weights;
pub use error::ExportError;
pub use lower::output_names;
pub use source::{Network, TrainedModel};

/// The largest max-abs difference between ONNX Runtime and Burn that export accepts.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// The same for a `--fp16` model, whose weights and activations carry 11-bit mantissas
/// (about 5e-4 relative each); outputs are normalised intensities of order 1.
pub const FP16_PARITY_TOLERANCE: f32 = 2e-2;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// A run folder (`runs/<name>`) or one of its checkpoint folders.
    pub source: PathBuf,
    pub out: PathBuf,
    /// The cross path's input contrast (default b); a denoiser's is its output's.
    pub from: Option<Domain>,
    pub to: Domain,
    pub skip_parity: bool,
    /// Float16 weights and compute, float32 input and output.
    pub fp16: bool,
    /// Also write a Triton Inference Server model repository here.
    pub triton_repo: Option<PathBuf>,
    /// Which of the checkpoint's weights (none: the average where the run kept one).
    pub weights: Option<Weights>,
}

/// What export wrote and measured.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub out: PathBuf,
    pub metadata: ModelMetadata,
    pub op_counts: BTreeMap<String, usize>,
    pub nodes: usize,
    pub parameters: usize,
    pub bytes: usize,
    /// `None` when the check was skipped.
    pub parity: Option<ParityReport>,
    /// The tolerance the parity check was held to.
    pub tolerance: f32,
    pub fp16: bool,
    pub triton: Option<PathBuf>,
    /// Which of the checkpoint's weights it holds.
    pub weights: Weights,
    /// A denoiser's scores on its run's validation slices at the last epoch before the
    /// checkpoint (none for the cross path, or a run without an ended epoch).
    pub validation: Option<DirectionValidation>,
}

// Long: the export's steps in their order (load, lower, metadata, encode, check, write),
// each a few lines that share the graph being built.
pub fn export(opts: &ExportOptions) -> Result<ExportReport, ExportError> {
    let trained = TrainedModel::load(&opts.source, opts.weights)?;
    let config = &trained.config;
    let domains = &config.data.domains;
    let (depth, channels) = (config.model.depth, config.model.base_channels);
    let (metadata, mut graph, inputs) = match &trained.network {
        Network::DualDomain(model) => {
            let from = opts.from.unwrap_or(Domain::B);
            let meta = path_metadata(domains, from, opts.to, depth, channels);
            (
                meta,
                lower::model_path(model, from, opts.to),
                vec![lower::INPUT],
            )
        }
        Network::Denoisers(pair) => {
            if let Some(from) = opts.from.filter(|f| *f != opts.to) {
                return Err(ExportError::Unsupported(format!(
                    "{}: a denoiser's output is its input's contrast; --from {} differs from \
                     --to {}: leave --from out (--to picks the contrast)",
                    opts.source.display(),
                    domain_key(from),
                    domain_key(opts.to)
                )));
            }
            let net = pair.get(opts.to);
            let meta = ModelMetadata {
                posterior: net.has_prior(),
                noise_levels: net.noise_levels() as u32,
                ..denoiser_metadata(domains, opts.to, net.is_guided(), depth, channels)
            };
            let mut inputs = if net.is_guided() {
                vec![lower::INPUT, lower::GUIDE]
            } else {
                vec![lower::INPUT]
            };
            if net.noise_levels() > 0 {
                inputs.push(lower::NOISE);
            }
            (meta, denoiser_graph::denoiser(net), inputs)
        }
    };
    let metadata = ModelMetadata {
        config_hash: Some(config.hash()),
        noise_coils: trained.noise_coils,
        ..metadata
    };
    if opts.fp16 {
        graph = graph.into_fp16(&inputs, &output_names(&metadata));
    }
    let op_counts = graph.op_counts().clone();
    let nodes = graph.node_count();
    let parameters = graph.parameter_count();
    let what = match metadata.kind {
        ModelKind::Synthesis => "no-skip path",
        _ => "network",
    };
    let doc = format!(
        "crossdenoise {}: {} {what} of run '{}' (config {}), trained {} epochs{}; inputs \
         normalised per slice by their {}th percentile, clamped to [0, {}], H and W multiples \
         of {}{}.",
        env!("CARGO_PKG_VERSION"),
        metadata.path_label(),
        config.name,
        config.hash(),
        trained.epochs_done,
        if opts.fp16 {
            ", float16 weights and compute"
        } else {
            ""
        },
        metadata.normalization.percentile,
        metadata.normalization.clamp_max,
        metadata.size_multiple,
        if metadata.posterior {
            "; outputs: the expected magnitude, and the spread (ln std / sigma) and the shift \
             of the mean (in sigmas) of a prior of the clean amplitude, from which the runtime \
             computes the posterior mean given each pixel's own value"
        } else if metadata.rician_correction {
            "; the output is the expected magnitude, whose Rician bias the runtime removes"
        } else {
            ""
        },
    );
    let mut props = metadata.to_props();
    props.push((
        "crossdenoise.precision".into(),
        if opts.fp16 { "fp16" } else { "fp32" }.into(),
    ));
    let bytes = encode(graph, &inputs, &metadata, &props, &doc)?;

    let tolerance = if opts.fp16 {
        FP16_PARITY_TOLERANCE
    } else {
        PARITY_TOLERANCE
    };
    let parity = write_checked(&bytes, &opts.out, tolerance, |file| {
        if opts.skip_parity {
            return Ok(None);
        }
        match &trained.network {
            Network::DualDomain(model) => {
                let from = opts.from.unwrap_or(Domain::B);
                parity::check(model, from, opts.to, file, depth).map(Some)
            }
            Network::Denoisers(pair) => {
                parity::check_denoiser(pair.get(opts.to), opts.to, file, depth).map(Some)
            }
        }
    })?;

    let triton = match &opts.triton_repo {
        Some(repo) => Some(triton::write_repository(repo, &opts.out, &metadata)?),
        None => None,
    };
    Ok(ExportReport {
        out: opts.out.clone(),
        metadata,
        op_counts,
        nodes,
        parameters,
        bytes: bytes.len(),
        parity,
        tolerance,
        fp16: opts.fp16,
        triton,
        weights: trained.weights,
        validation: trained.validation.map(|v| v.get(opts.to).clone()),
    })
}

fn domain_key(d: Domain) -> &'static str {
    match d {
        Domain::A => "a",
        Domain::B => "b",
    }
}

/// The metadata of the denoiser of contrast `to` (guided by the other contrast, or alone):
/// its output is its input's contrast, an expected magnitude to be bias-corrected.
pub fn denoiser_metadata(
    domains: &[String; 2],
    to: Domain,
    guided: bool,
    depth: usize,
    base_channels: usize,
) -> ModelMetadata {
    let other = match to {
        Domain::A => Domain::B,
        Domain::B => Domain::A,
    };
    let name = |d: Domain| match d {
        Domain::A => domains[0].clone(),
        Domain::B => domains[1].clone(),
    };
    ModelMetadata {
        kind: if guided {
            ModelKind::Guided
        } else {
            ModelKind::Single
        },
        guide: guided.then(|| GuideMetadata {
            domain: domain_key(other).into(),
            name: name(other),
            normalization: Normalization::default(),
        }),
        rician_correction: true,
        ..path_metadata(domains, to, to, depth, base_channels)
    }
}

/// The metadata of the `from -> to` path of a model with `depth` levels and
/// `base_channels`, its domains named as in `domains` (`[a, b]`); no config hash.
pub fn path_metadata(
    domains: &[String; 2],
    from: Domain,
    to: Domain,
    depth: usize,
    base_channels: usize,
) -> ModelMetadata {
    let side = |d: Domain| match d {
        Domain::A => ("a".to_string(), domains[0].clone()),
        Domain::B => ("b".to_string(), domains[1].clone()),
    };
    let kind = if from == to {
        ModelKind::Single
    } else {
        ModelKind::Synthesis
    };
    let ((from, from_name), (to, to_name)) = (side(from), side(to));
    ModelMetadata {
        from,
        from_name,
        to,
        to_name,
        normalization: Normalization::default(),
        size_multiple: 1 << depth,
        depth: Some(depth as u32),
        base_channels: Some(base_channels),
        config_hash: None,
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        kind,
        guide: None,
        rician_correction: false,
        posterior: false,
        noise_coils: 1,
        noise_levels: 0,
    }
}

/// Serialises a lowered graph into an ONNX model with `props` as its metadata and `doc` as
/// its doc string.
pub fn encode(
    graph: graph::GraphBuilder,
    inputs: &[&str],
    metadata: &ModelMetadata,
    props: &[(String, String)],
    doc: &str,
) -> Result<Vec<u8>, ExportError> {
    graph
        .finish(
            inputs,
            &output_names(metadata),
            &triton::model_name(metadata),
            doc,
            props,
        )
        .write_to_bytes()
        .map_err(|e| ExportError::Encode(e.to_string()))
}

/// Writes `bytes` to a temporary name beside `out`, runs `check` on that file, and renames
/// it to `out` only when the check passes within `tolerance`: a failed check or a crash
/// never leaves a file under the requested name.
pub fn write_checked(
    bytes: &[u8],
    out: &Path,
    tolerance: f32,
    check: impl FnOnce(&Path) -> Result<Option<ParityReport>, ExportError>,
) -> Result<Option<ParityReport>, ExportError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| ExportError::io(parent, e))?;
    }
    let tmp = temp_path(out);
    fs::write(&tmp, bytes).map_err(|e| ExportError::io(&tmp, e))?;
    let report = match check(&tmp) {
        Ok(Some(report)) if report.max_abs_error() > tolerance => {
            let _ = fs::remove_file(&tmp);
            return Err(ExportError::Parity {
                report: Box::new(report),
                tolerance,
            });
        }
        Ok(report) => report,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, out).map_err(|e| ExportError::io(out, e))?;
    Ok(report)
}

fn temp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.onnx".into());
    out.with_file_name(format!(".{name}.partial"))
}
