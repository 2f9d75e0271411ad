//! The no_skip path E_from -> z -> D_to written out as ONNX nodes, one per Burn layer.
//!
//! Mirrors `crossdenoise_train::model` exactly: a conv block is Conv -> InstanceNorm ->
//! LeakyReLU twice; the encoder is a stem block then, per level, AveragePool(2) and a block;
//! the decoder is, per level, ConvTranspose(2, stride 2) -> InstanceNorm -> LeakyReLU and a
//! block, then a 1x1 head (plus the input with identity mapping). No skip is read, so the
//! encoder's skip outputs are simply never produced.

use burn::module::Param;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{InstanceNorm, PaddingConfig2d};
use burn::prelude::*;
use crossdenoise_train::model::{ConvBlock, Decoder, DualDomain, Encoder, LEAKY_SLOPE};

use crate::graph::{Attr, GraphBuilder};

pub const INPUT: &str = "image";
/// The second input of a guided denoiser: the other contrast of the slice.
pub const GUIDE: &str = "guide";
/// The noise levels a denoiser with a noise input reads, `[N, K]`.
pub const NOISE: &str = crossdenoise_image::noise::INPUT_NOISE;
pub const OUTPUT: &str = crossdenoise_image::posterior::OUTPUT_EXPECTED;
/// The second output of a denoiser with a posterior step: the prior's spread.
pub const SPREAD: &str = crossdenoise_image::posterior::OUTPUT_SPREAD;
/// The third output of a denoiser with a posterior step: the shift of the prior's mean.
pub const SHIFT: &str = crossdenoise_image::posterior::OUTPUT_SHIFT;

/// Lowers `decoder(E(x))` with no skips; `identity` adds the input to the head's output.
pub fn no_skip_path(encoder: &Encoder, decoder: &Decoder) -> GraphBuilder {
    let mut g = GraphBuilder::new();
    let mut h = conv_block(&mut g, "enc.stem", &encoder.stem, INPUT);
    for (l, level) in encoder.levels.iter().enumerate() {
        let pool = g.node(
            "AveragePool",
            &format!("enc.level{}.pool", l + 1),
            &[&h],
            vec![
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("strides", Attr::Ints(vec![2, 2])),
            ],
        );
        h = conv_block(&mut g, &format!("enc.level{}", l + 1), level, &pool);
    }
    let depth = decoder.levels.len();
    for (k, level) in decoder.levels.iter().enumerate() {
        let name = format!("dec.level{}", depth - 1 - k);
        let up = conv_transpose(&mut g, &format!("{name}.up"), &level.up, &h);
        let norm = instance_norm(
            &mut g,
            &format!("{name}.norm"),
            &level.norm,
            &up,
            channels_t(&level.up),
        );
        let act = leaky(&mut g, &format!("{name}.act"), &norm);
        h = conv_block(&mut g, &format!("{name}.block"), &level.block, &act);
    }
    let head = conv(&mut g, "dec.head", &decoder.head, &h);
    if decoder.identity_mapping {
        g.node("Add", "dec.identity", &[INPUT, &head], vec![]);
    }
    g.rename_last_output(OUTPUT);
    g
}

/// Convenience for a whole model and a path.
pub fn model_path(
    model: &DualDomain,
    from: crossdenoise_train::model::Domain,
    to: crossdenoise_train::model::Domain,
) -> GraphBuilder {
    no_skip_path(model.encoder(from), model.decoder(to))
}

fn conv_block(g: &mut GraphBuilder, name: &str, block: &ConvBlock, x: &str) -> String {
    let c1 = conv(g, &format!("{name}.conv1"), &block.conv1, x);
    let n1 = instance_norm(
        g,
        &format!("{name}.norm1"),
        &block.norm1,
        &c1,
        channels(&block.conv1),
    );
    let a1 = leaky(g, &format!("{name}.act1"), &n1);
    let c2 = conv(g, &format!("{name}.conv2"), &block.conv2, &a1);
    let n2 = instance_norm(
        g,
        &format!("{name}.norm2"),
        &block.norm2,
        &c2,
        channels(&block.conv2),
    );
    leaky(g, &format!("{name}.act2"), &n2)
}

fn channels(conv: &Conv2d) -> usize {
    conv.weight.val().dims()[0]
}

fn channels_t(conv: &ConvTranspose2d) -> usize {
    conv.weight.val().dims()[1]
}

pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float weights")
}

/// The node inputs `[x, weight, bias?]` of a (transposed) convolution, with its weight
/// and bias added as initializers; also the weight's dims.
fn weight_inputs(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    weight: &Param<Tensor<4>>,
    bias: Option<&Param<Tensor<1>>>,
) -> (Vec<String>, [usize; 4]) {
    let w = weight.val();
    let dims = w.dims();
    // A layer that runs at several places of the graph keeps one copy of its weights.
    let shared = |g: &mut GraphBuilder, key: String, dims: &[usize], v: Vec<f32>| {
        if g.has_initializer(&key) {
            key
        } else {
            g.initializer(&key, dims, &v)
        }
    };
    let mut inputs = vec![
        x.to_string(),
        shared(g, format!("{name}.weight"), &dims, values(w)),
    ];
    if let Some(b) = bias {
        let b = b.val();
        inputs.push(shared(g, format!("{name}.bias"), &b.dims(), values(b)));
    }
    (inputs, dims)
}

/// A convolution with the layer's own kernel, stride, dilation and (explicit) padding.
pub(crate) fn conv(g: &mut GraphBuilder, name: &str, conv: &Conv2d, x: &str) -> String {
    conv_shared(g, name, name, conv, x)
}

/// [`conv`] as node `node`, with the weights stored (once) under `weights`.
pub(crate) fn conv_shared(
    g: &mut GraphBuilder,
    node: &str,
    weights: &str,
    conv: &Conv2d,
    x: &str,
) -> String {
    let (inputs, dims) = weight_inputs(g, weights, x, &conv.weight, conv.bias.as_ref());
    // ONNX orders pads as [top, left, bottom, right], as Burn's Explicit does.
    let pads = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => [t, l, b, r],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => {
            let (ph, pw) = ((dims[2] - 1) / 2, (dims[3] - 1) / 2);
            [ph, pw, dims[2] - 1 - ph, dims[3] - 1 - pw]
        }
    };
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    g.node(
        "Conv",
        node,
        &refs,
        vec![
            ("kernel_shape", ints(&[dims[2], dims[3]])),
            ("pads", ints(&pads)),
            ("strides", ints(&conv.stride)),
            ("dilations", ints(&conv.dilation)),
            ("group", Attr::Int(conv.groups as i64)),
        ],
    )
}

pub(crate) fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// The transposed convolution of each decoder level (2x2, stride 2). Burn and ONNX share
/// the weight layout `[C_in, C_out / groups, kH, kW]`.
pub(crate) fn conv_transpose(
    g: &mut GraphBuilder,
    name: &str,
    conv: &ConvTranspose2d,
    x: &str,
) -> String {
    conv_transpose_shared(g, name, name, conv, x)
}

/// [`conv_transpose`] as node `node`, with the weights stored (once) under `weights`.
pub(crate) fn conv_transpose_shared(
    g: &mut GraphBuilder,
    node: &str,
    weights: &str,
    conv: &ConvTranspose2d,
    x: &str,
) -> String {
    let (inputs, dims) = weight_inputs(g, weights, x, &conv.weight, conv.bias.as_ref());
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let [ph, pw] = conv.padding;
    g.node(
        "ConvTranspose",
        node,
        &refs,
        vec![
            ("kernel_shape", ints(&[dims[2], dims[3]])),
            ("strides", ints(&conv.stride)),
            ("dilations", ints(&conv.dilation)),
            ("pads", ints(&[ph, pw, ph, pw])),
            ("output_padding", ints(&conv.padding_out)),
            ("group", Attr::Int(conv.groups as i64)),
        ],
    )
}

/// InstanceNormalization with unit scale and zero bias (the model's norms are not affine);
/// one pair of those constants per channel count, shared by every norm of that width.
fn instance_norm(
    g: &mut GraphBuilder,
    name: &str,
    norm: &InstanceNorm,
    x: &str,
    channels: usize,
) -> String {
    let (scale, bias) = match (&norm.gamma, &norm.beta) {
        (Some(gamma), Some(beta)) => (
            g.initializer(&format!("{name}.scale"), &[channels], &values(gamma.val())),
            g.initializer(&format!("{name}.bias"), &[channels], &values(beta.val())),
        ),
        _ => {
            let (s, b) = (format!("ones{channels}"), format!("zeros{channels}"));
            if !g.has_initializer(&s) {
                g.initializer(&s, &[channels], &vec![1.0; channels]);
                g.initializer(&b, &[channels], &vec![0.0; channels]);
            }
            (s, b)
        }
    };
    g.node(
        "InstanceNormalization",
        name,
        &[x, &scale, &bias],
        vec![("epsilon", Attr::Float(norm.epsilon as f32))],
    )
}

fn leaky(g: &mut GraphBuilder, name: &str, x: &str) -> String {
    leaky_slope(g, name, x, LEAKY_SLOPE)
}

pub(crate) fn leaky_slope(g: &mut GraphBuilder, name: &str, x: &str, slope: f64) -> String {
    g.node(
        "LeakyRelu",
        name,
        &[x],
        vec![("alpha", Attr::Float(slope as f32))],
    )
}
/// The graph's outputs: the expected magnitude, and the prior's spread and shift for a model
/// with the posterior step (`ModelMetadata::posterior`).
pub fn output_names(metadata: &crossdenoise_image::ModelMetadata) -> Vec<&'static str> {
    if metadata.posterior {
        vec![OUTPUT, SPREAD, SHIFT]
    } else {
        vec![OUTPUT]
    }
}
