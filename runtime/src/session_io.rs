//! What ONNX Runtime is asked of a model's session: its inputs and outputs checked against
//! what the denoiser feeds it, its metadata properties read, and a run on one batch with
//! the outputs checked.

use std::collections::HashMap;
use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef};

use crate::{Error, Result};

/// Runs the session on an `[N, 1, H, W]` input (and a guide of that shape) and returns its
/// checked output, the same shape, all finite.
pub(crate) fn run_session(
    session: &mut Session,
    path: &Path,
    (input_name, input): (&str, &[f32]),
    guide: Option<(&str, &[f32])>,
    shape: [usize; 4],
    count: usize,
) -> Result<Vec<Vec<f32>>> {
    let infer = |reason: String| Error::Inference {
        path: path.into(),
        reason,
    };
    let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| infer(e.to_string()))?;
    let outputs = match guide {
        None => session.run(ort::inputs![input_name => tensor]),
        Some((guide_name, guide)) => {
            let g = TensorRef::from_array_view((shape, guide)).map_err(|e| infer(e.to_string()))?;
            session.run(ort::inputs![input_name => tensor, guide_name => g])
        }
    }
    .map_err(|e| infer(e.to_string()))?;
    if outputs.len() < count {
        return Err(infer(format!(
            "{} output(s); the model's metadata promises {count}",
            outputs.len()
        )));
    }
    let want = shape.map(|d| d as i64);
    (0..count)
        .map(|k| {
            let (out_shape, data) = outputs[k]
                .try_extract_tensor::<f32>()
                .map_err(|e| infer(e.to_string()))?;
            if **out_shape != want {
                return Err(infer(format!(
                    "output {k} has shape {:?}, not the input's {want:?}",
                    &**out_shape
                )));
            }
            Ok(data.to_vec())
        })
        .collect()
}

/// Checks the model has one float `[N, 1, H, W]` input (or two, `image` and `guide`) and a
/// rank-4 output; returns the input's name and the guide's.
pub(crate) fn check_io(session: &Session) -> std::result::Result<(String, Option<String>), String> {
    let inputs = session.inputs();
    let (input, guide) = match inputs {
        [input] => (input, None),
        [a, b] => {
            let find = |name: &str| inputs.iter().find(|i| i.name() == name);
            match (find("image"), find("guide")) {
                (Some(i), Some(g)) => (i, Some(g)),
                _ => {
                    return Err(format!(
                        "has two inputs, '{}' and '{}'; a guided model's are `image` and `guide`",
                        a.name(),
                        b.name()
                    ));
                }
            }
        }
        _ => {
            return Err(format!(
                "has {} inputs; expected `image` [N, 1, H, W] (and `guide` for a guided model)",
                inputs.len()
            ));
        }
    };
    let Some(output) = session.outputs().first() else {
        return Err("has no outputs".into());
    };
    let mut outlets = vec![("input", input), ("output", output)];
    if let Some(g) = guide {
        outlets.push(("input", g));
    }
    for (what, outlet) in outlets {
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
    Ok((
        input.name().to_string(),
        guide.map(|g| g.name().to_string()),
    ))
}

fn show_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

pub(crate) fn read_props(session: &Session) -> ort::Result<HashMap<String, String>> {
    let meta = session.metadata()?;
    let mut props = HashMap::new();
    for key in meta.custom_keys()? {
        if let Some(v) = meta.custom(&key) {
            props.insert(key, v);
        }
    }
    Ok(props)
}
