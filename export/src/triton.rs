//! A Triton Inference Server model repository for the exported model, for a site that
//! outgrows one box: `<repo>/<name>/config.pbtxt` and `<repo>/<name>/1/model.onnx`.
//!
//! The config serves the model with Triton's ONNX Runtime backend, TensorRT as its GPU
//! accelerator (fp16), and dynamic batching; the preprocessing contract rides along as
//! model parameters so a client can read it from Triton's model-config endpoint.

use std::fs;
use std::path::{Path, PathBuf};

use crossdenoise_image::{ModelKind, ModelMetadata};

use crate::error::ExportError;
use crate::lower::{GUIDE, INPUT, NOISE};

/// Largest batch Triton forms from queued requests.
pub const MAX_BATCH_SIZE: usize = 8;

pub fn model_name(meta: &ModelMetadata) -> String {
    let clean = |s: &str, fallback: &str| {
        let s: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if s.is_empty() {
            fallback.to_string()
        } else {
            s
        }
    };
    let to = clean(&meta.to_name, &meta.to);
    match meta.kind {
        ModelKind::Synthesis => {
            format!(
                "crossdenoise_{}_to_{to}",
                clean(&meta.from_name, &meta.from)
            )
        }
        kind => format!("crossdenoise_{to}_{}", kind.name()),
    }
}

/// The `config.pbtxt` text (protobuf text format of Triton's `ModelConfig`).
pub fn config_pbtxt(meta: &ModelMetadata) -> String {
    // The same keys and values as the ONNX file's metadata: one source for both.
    let params: String = meta
        .to_props()
        .iter()
        .map(|(k, v)| {
            format!("parameters {{\n  key: \"{k}\"\n  value {{ string_value: \"{v}\" }}\n}}\n")
        })
        .collect();
    let tensor_of = |name: &str, dims: &str| {
        format!("  {{\n    name: \"{name}\"\n    data_type: TYPE_FP32\n    dims: [ {dims} ]\n  }}")
    };
    let tensor = |name: &str| tensor_of(name, "1, -1, -1");
    let mut inputs = vec![tensor(INPUT)];
    if meta.guide.is_some() {
        inputs.push(tensor(GUIDE));
    }
    if meta.noise_levels > 0 {
        inputs.push(tensor_of(NOISE, &meta.noise_levels.to_string()));
    }
    let noise_note = if meta.noise_levels > 0 {
        format!(
            "\n# `{NOISE}` is each slice's noise sigma in those normalised units (then its guide's),\n\
             # estimated as crossdenoise-runtime does (noise::estimate_sigma on the normalised slice)."
        )
    } else {
        String::new()
    };
    let guide_note = match &meta.guide {
        Some(g) => format!(
            "\n# `{GUIDE}` is the same slice in the partner contrast ({}), normalised the same way.",
            g.name
        ),
        None => String::new(),
    };
    let correction_note = if meta.posterior {
        "\n# Outputs: the denoised magnitude's expectation, and the spread (ln std / sigma) and\n\
         # the shift of the mean (in sigmas, from the expectation's amplitude) of a prior of the\n\
         # clean amplitude: compute each pixel's posterior mean under the Rician likelihood at\n\
         # the slice's noise level as crossdenoise-runtime does (posterior.rs; below its\n\
         # phase-in, the expectation inverted as the slice's fitted floor prior says)."
    } else if meta.rician_correction {
        "\n# The output is the denoised magnitude's expectation: remove its Rician bias at the\n\
         # slice's noise level as crossdenoise-runtime does (magnitude_bias::BiasCorrection,\n\
         # near the noise floor as the slice's fitted floor prior says: floor_aware.rs)."
    } else {
        ""
    };
    format!(
        r#"# Triton Inference Server model configuration written by crossdenoise export.
# Inputs are slices normalised by their {percentile}th percentile and clamped to
# [0, {clamp}], with H and W multiples of {multiple} (see the parameters below).{guide_note}{noise_note}{correction_note}
name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch}
input [
{inputs}
]
output [
{outputs}
]
dynamic_batching {{
  max_queue_delay_microseconds: 2000
}}
instance_group [
  {{
    count: 1
    kind: KIND_GPU
  }}
]
optimization {{
  execution_accelerators {{
    gpu_execution_accelerator: [
      {{
        name: "tensorrt"
        parameters {{ key: "precision_mode" value: "FP16" }}
        parameters {{ key: "max_workspace_size_bytes" value: "2147483648" }}
        parameters {{ key: "trt_engine_cache_enable" value: "1" }}
      }}
    ]
  }}
}}
{params}"#,
        percentile = meta.normalization.percentile,
        clamp = meta.normalization.clamp_max,
        multiple = meta.size_multiple,
        name = model_name(meta),
        max_batch = MAX_BATCH_SIZE,
        inputs = inputs.join(",\n"),
        outputs = crate::lower::output_names(meta)
            .into_iter()
            .map(tensor)
            .collect::<Vec<_>>()
            .join(",\n"),
    )
}

/// Writes the repository; returns the model's folder.
pub fn write_repository(
    repo: &Path,
    onnx: &Path,
    meta: &ModelMetadata,
) -> Result<PathBuf, ExportError> {
    let dir = repo.join(model_name(meta));
    let version = dir.join("1");
    fs::create_dir_all(&version).map_err(|e| ExportError::io(&version, e))?;
    let model = version.join("model.onnx");
    fs::copy(onnx, &model).map_err(|e| ExportError::io(&model, e))?;
    let config = dir.join("config.pbtxt");
    fs::write(&config, config_pbtxt(meta)).map_err(|e| ExportError::io(&config, e))?;
    Ok(dir)
}
