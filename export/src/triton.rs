//! A Triton Inference Server model repository for the exported model, for a site that
//! outgrows one box: `<repo>/<name>/config.pbtxt` and `<repo>/<name>/1/model.onnx`.
//!
//! The config serves the model with Triton's ONNX Runtime backend, TensorRT as its GPU
//! accelerator (fp16), and dynamic batching; the preprocessing contract rides along as
//! model parameters so a client can read it from Triton's model-config endpoint.

use std::fs;
use std::path::{Path, PathBuf};

use crossdenoise_runtime::ModelMetadata;

use crate::ExportError;
use crate::lower::{INPUT, OUTPUT};

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
    format!(
        "crossdenoise_{}_to_{}",
        clean(&meta.from_name, &meta.from),
        clean(&meta.to_name, &meta.to)
    )
}

/// The `config.pbtxt` text (protobuf text format of Triton's `ModelConfig`).
pub fn config_pbtxt(meta: &ModelMetadata) -> String {
    let mut params = vec![
        ("crossdenoise.from".to_string(), meta.from_name.clone()),
        ("crossdenoise.to".to_string(), meta.to_name.clone()),
        (
            "crossdenoise.normalization.percentile".to_string(),
            meta.normalization.percentile.to_string(),
        ),
        (
            "crossdenoise.normalization.clamp_max".to_string(),
            meta.normalization.clamp_max.to_string(),
        ),
        (
            "crossdenoise.size_multiple".to_string(),
            meta.size_multiple.to_string(),
        ),
    ];
    if let Some(h) = &meta.config_hash {
        params.push(("crossdenoise.config_hash".to_string(), h.clone()));
    }
    let params: String = params
        .iter()
        .map(|(k, v)| {
            format!("parameters {{\n  key: \"{k}\"\n  value {{ string_value: \"{v}\" }}\n}}\n")
        })
        .collect();
    format!(
        r#"# Triton Inference Server model configuration written by crossdenoise export.
# Inputs are slices normalised by their {percentile}th percentile and clamped to
# [0, {clamp}], with H and W multiples of {multiple} (see the parameters below).
name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch}
input [
  {{
    name: "{input}"
    data_type: TYPE_FP32
    dims: [ 1, -1, -1 ]
  }}
]
output [
  {{
    name: "{output}"
    data_type: TYPE_FP32
    dims: [ 1, -1, -1 ]
  }}
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
        input = INPUT,
        output = OUTPUT,
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
