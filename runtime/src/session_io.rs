//! What ONNX Runtime is asked of a model's session: its inputs and outputs checked against
//! what the denoiser feeds it, its metadata properties read, and a run on one batch with
//! the outputs checked.

use std::collections::HashMap;
use std::path::Path;

use crossdenoise_image::Error as ImageError;
use crossdenoise_image::model_metadata::{ModelKind, ModelMetadata};
use crossdenoise_image::noise::INPUT_NOISE;
use crossdenoise_image::posterior;
use ndarray::ArrayView2;
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef};

use crate::{Error, Result};

/// The names of a model's inputs: the slices', the guides' (a guided model) and the noise
/// levels' (a model that reads them), with how many levels a slice has.
#[derive(Debug, Clone)]
pub(crate) struct InputNames {
    pub image: String,
    pub guide: Option<String>,
    pub noise: Option<(String, usize)>,
}

/// One batch as the session takes it: the `[N, 1, H, W]` slices, their guides (that shape)
/// and their noise levels (`[N, K]`), each where the model reads it.
pub(crate) struct Batch<'a> {
    pub input: &'a [f32],
    pub guide: Option<&'a [f32]>,
    pub noise: Option<&'a [f32]>,
    pub shape: [usize; 4],
}

/// Runs the session on one batch and returns its checked outputs, each the input's shape,
/// all finite.
pub(crate) fn run_session(
    session: &mut Session,
    path: &Path,
    names: &InputNames,
    batch: Batch,
    count: usize,
) -> Result<Vec<Vec<f32>>> {
    let infer = |reason: String| Error::Inference {
        path: path.into(),
        reason,
    };
    let shape = batch.shape;
    let plane = |data| TensorRef::from_array_view((shape, data)).map_err(|e| infer(e.to_string()));
    let mut inputs: Vec<(&str, SessionInputValue)> =
        vec![(&names.image, plane(batch.input)?.into())];
    if let (Some(name), Some(guide)) = (&names.guide, batch.guide) {
        inputs.push((name, plane(guide)?.into()));
    }
    if let (Some((name, k)), Some(noise)) = (&names.noise, batch.noise) {
        let levels = TensorRef::from_array_view(([shape[0], *k], noise))
            .map_err(|e| infer(e.to_string()))?;
        inputs.push((name, levels.into()));
    }
    let outputs = session.run(inputs).map_err(|e| infer(e.to_string()))?;
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

/// Checks the model's inputs: a float `[N, 1, H, W]` `image` (the only input may have any
/// name), a `guide` of that shape for a guided model, and `noise` `[N, K]` for a model that
/// reads noise levels (K = 2 with a guide, 1 without); and a rank-4 output.
pub(crate) fn check_io(session: &Session) -> std::result::Result<InputNames, String> {
    let inputs = session.inputs();
    let find = |name: &str| inputs.iter().find(|i| i.name() == name);
    let (input, guide, noise) = match inputs {
        [input] => (input, None, None),
        _ => {
            let known = ["image", "guide", INPUT_NOISE];
            if let Some(odd) = inputs.iter().find(|i| !known.contains(&i.name())) {
                return Err(format!(
                    "has an input '{}'; a model of several inputs has `image`, `guide` (a \
                     guided model) and `{INPUT_NOISE}` (one that reads noise levels)",
                    odd.name()
                ));
            }
            let Some(image) = find("image") else {
                return Err(format!("has {} inputs but no `image`", inputs.len()));
            };
            (image, find("guide"), find(INPUT_NOISE))
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
    let noise = match noise {
        None => None,
        Some(n) => {
            let levels = if guide.is_some() { 2 } else { 1 };
            let dtype = n.dtype();
            let shape = dtype.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
            if dtype.tensor_type() != Some(TensorElementType::Float32)
                || shape.len() != 2
                || shape[1] != levels as i64
            {
                return Err(format!(
                    "input `{INPUT_NOISE}` is {dtype} of shape {}; expected float32 [N, \
                     {levels}] (the slice's noise level{})",
                    show_shape(&shape),
                    if levels == 2 { " and its guide's" } else { "" }
                ));
            }
            Some((n.name().to_string(), levels))
        }
    };
    Ok(InputNames {
        image: input.name().to_string(),
        guide: guide.map(|g| g.name().to_string()),
        noise,
    })
}

/// Checks the graph's inputs and outputs against what the model's metadata says of it:
/// three outputs for the posterior step, a `guide` input exactly for a guided model, and a
/// `noise` input of as many levels as the metadata states.
pub(crate) fn check_against_metadata(
    session: &Session,
    names: &InputNames,
    metadata: &ModelMetadata,
    has_metadata: bool,
) -> std::result::Result<(), String> {
    if session.outputs().len() < metadata.outputs() {
        return Err(format!(
            "its metadata says it states a prior for the posterior step, which takes three \
             outputs (`{}`, `{}` and `{}`), but the graph has {}",
            posterior::OUTPUT_EXPECTED,
            posterior::OUTPUT_SPREAD,
            posterior::OUTPUT_SHIFT,
            session.outputs().len()
        ));
    }
    match (metadata.kind == ModelKind::Guided, &names.guide) {
        (true, None) => {
            return Err(
                "its metadata says it is a guided denoiser, but the graph has no `guide` input"
                    .into(),
            );
        }
        (false, Some(_)) if has_metadata => {
            return Err(format!(
                "the graph has a `guide` input, but its metadata says it is a {} model",
                metadata.kind.name()
            ));
        }
        _ => {}
    }
    let graph_levels = names.noise.as_ref().map_or(0, |(_, k)| *k as u32);
    if has_metadata && metadata.noise_levels != graph_levels {
        return Err(format!(
            "its metadata says it reads {} noise level(s) a slice, but its graph's \
             `{INPUT_NOISE}` input takes {graph_levels}",
            metadata.noise_levels,
        ));
    }
    Ok(())
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

/// An error unless a call gives a guide exactly when the model (at `path`, `needs` one or
/// not) reads one.
pub(crate) fn guide_given(
    path: &Path,
    metadata: &ModelMetadata,
    needs: bool,
    given: bool,
) -> Result<()> {
    let label = metadata.path_label();
    let invalid = |reason| {
        Err(Error::Image(crossdenoise_image::Error::Invalid {
            what: "guide",
            reason,
        }))
    };
    match (needs, given) {
        (true, false) => invalid(format!(
            "{} is a {label}: it needs each slice's partner contrast{} as a guide",
            path.display(),
            metadata
                .guide
                .as_ref()
                .map(|g| format!(" ({})", g.name))
                .unwrap_or_default()
        )),
        (false, true) => invalid(format!(
            "{} is a {label}: it takes no guide",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// An error unless there is one guide per slice.
pub(crate) fn one_guide_each(slices: usize, guides: usize) -> Result<()> {
    if guides == slices {
        return Ok(());
    }
    Err(Error::Image(crossdenoise_image::Error::Shape {
        what: "guides",
        expected: format!("one guide per slice ({slices})"),
        got: format!("{guides}"),
    }))
}

/// The size of every slice and guide of a batch (`None` for an empty batch); an error
/// naming the first slice or guide of another size, or an empty slice.
pub(crate) fn batch_dim(
    images: &[ArrayView2<f32>],
    guides: Option<&[ArrayView2<f32>]>,
) -> Result<Option<(usize, usize)>> {
    let Some(first) = images.first() else {
        return Ok(None);
    };
    let (h, w) = first.dim();
    if h == 0 || w == 0 {
        return Err(Error::Image(ImageError::Shape {
            what: "slice",
            expected: "a non-empty image".into(),
            got: format!("{h}x{w}"),
        }));
    }
    if let Some((i, other)) = images.iter().enumerate().find(|(_, im)| im.dim() != (h, w)) {
        return Err(Error::Image(ImageError::Shape {
            what: "batch",
            expected: format!("every slice {h}x{w} (as slice 0)"),
            got: format!("slice {i} is {}x{}", other.nrows(), other.ncols()),
        }));
    }
    if let Some((i, g)) = guides
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, g)| g.dim() != (h, w))
    {
        return Err(Error::Image(ImageError::Shape {
            what: "guide",
            expected: format!("the size of its slice, {h}x{w}"),
            got: format!("guide {i} is {}x{}", g.nrows(), g.ncols()),
        }));
    }
    Ok(Some((h, w)))
}
