//! The guided (or single-contrast) denoiser written out as ONNX nodes, mirroring
//! `crossdenoise_train::model::{GuidedDenoiser, blind_spot}` layer by layer.
//!
//! The blind U-Net runs once per quarter turn (four copies of its nodes over one set of
//! weights), so the graph takes any H x W, square or not; Burn batches the four turns of a
//! square image into one pass, which computes the same function. A quarter turn is a
//! Transpose and a reversing Slice; "shift down one row" is a Pad whose bottom entry is -1
//! (ONNX Pad crops with negative pads).

use burn::nn::Linear;
use crossdenoise_train::model::GuidedDenoiser;
use crossdenoise_train::model::NOISE_GAIN;
use crossdenoise_train::model::blind_spot::{BlindUNet, SLOPE};

use crate::graph::{Attr, GraphBuilder};
use crate::lower::{
    GUIDE, INPUT, NOISE, OUTPUT, SHIFT, SPREAD, conv, conv_shared, conv_transpose_shared, ints,
    leaky_slope, values,
};

/// Lowers `net` with inputs `image` (and `guide` for a guided network, `noise` for one
/// that reads noise levels) and output `denoised` (and `spread` for a network with a prior).
pub fn denoiser(net: &GuidedDenoiser) -> GraphBuilder {
    let mut g = GraphBuilder::new();
    let guide = net.is_guided().then_some(GUIDE);
    let shifts = net.noise.as_ref().map(|input| {
        g.declare_input(NOISE, &[input.stem.weight.dims()[0]]);
        (
            noise_shift(&mut g, "noise.stem", &input.stem),
            noise_shift(&mut g, "noise.fuse", &input.fuse),
        )
    });
    let (stem_shift, fuse_shift) = match &shifts {
        Some((s, f)) => (Some(s.as_str()), Some(f.as_str())),
        None => (None, None),
    };
    let mut parts = Vec::with_capacity(5);
    for k in 0..4 {
        let name = format!("turn{k}");
        let x = rotate(&mut g, &format!("{name}.image"), INPUT, k);
        let gk = guide.map(|gd| rotate(&mut g, &format!("{name}.guide"), gd, k));
        let h = unet(&mut g, &name, &net.unet, &x, gk.as_deref(), stem_shift);
        parts.push(rotate(&mut g, &format!("{name}.back"), &h, (4 - k) % 4));
    }
    if let Some(gd) = guide {
        let mut h = gd.to_string();
        for (i, c) in net.guide_stem.iter().enumerate() {
            let name = format!("guide_stem{i}");
            let y = conv(&mut g, &name, c, &h);
            h = leaky_slope(&mut g, &format!("{name}.act"), &y, SLOPE);
        }
        parts.push(h);
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let mut h = g.node("Concat", "fuse.concat", &refs, vec![("axis", Attr::Int(1))]);
    let last = net.fuse.len() - 1;
    for (i, c) in net.fuse[..last].iter().enumerate() {
        let name = format!("fuse{i}");
        h = conv(&mut g, &name, c, &h);
        if let (0, Some(shift)) = (i, fuse_shift) {
            h = g.node("Add", &format!("{name}.noise"), &[&h, shift], vec![]);
        }
        h = leaky_slope(&mut g, &format!("{name}.act"), &h, SLOPE);
    }
    let features = h;
    conv(&mut g, &format!("fuse{last}"), &net.fuse[last], &features);
    g.rename_last_output(OUTPUT);
    if let Some(head) = net.prior_head() {
        let hidden = conv(&mut g, "prior.hidden", &head.hidden, &features);
        let hidden = leaky_slope(&mut g, "prior.hidden.act", &hidden, SLOPE);
        conv(&mut g, "prior.spread", &head.spread, &hidden);
        g.rename_last_output(SPREAD);
        conv(&mut g, "prior.shift", &head.shift, &hidden);
        g.rename_last_output(SHIFT);
    }
    g
}

/// The per-channel bias `[N, C, 1, 1]` a noise input adds (`train::model::guided::
/// NoiseInput`): the levels `[N, K]` times the weights `[K, C]`, the gain folded in.
fn noise_shift(g: &mut GraphBuilder, name: &str, linear: &Linear) -> String {
    let [k, c] = linear.weight.dims();
    let w: Vec<f32> = values(linear.weight.val())
        .iter()
        .map(|v| v * NOISE_GAIN)
        .collect();
    let w = g.initializer(&format!("{name}.weight"), &[k, c], &w);
    let y = g.node("MatMul", name, &[NOISE, &w], vec![]);
    let shape = g.initializer_i64(&format!("const.bias{c}.shape"), &[0, c as i64, 1, 1]);
    g.node("Reshape", &format!("{name}.bias"), &[&y, &shape], vec![])
}

/// The blind U-Net of one turn (`train::model::blind_spot::BlindUNet::forward`), its first
/// convolution shifted by `stem_shift` when the network reads noise levels.
fn unet(
    g: &mut GraphBuilder,
    name: &str,
    net: &BlindUNet,
    x: &str,
    guide: Option<&str>,
    stem_shift: Option<&str>,
) -> String {
    // Node `turnK.layer` uses the weights `unet.layer`, shared by the four turns.
    let weights = |n: &str| format!("unet{}", &n[name.len()..]);
    // A blind convolution, with the noise levels' bias (if any) before its activation.
    let blind_biased = |g: &mut GraphBuilder, n: &str, c, x: &str, bias: Option<&str>| {
        let shifted = shift_down(g, &format!("{n}.shift"), x);
        let mut y = conv_shared(g, n, &weights(n), c, &shifted);
        if let Some(bias) = bias {
            y = g.node("Add", &format!("{n}.noise"), &[&y, bias], vec![]);
        }
        leaky_slope(g, &format!("{n}.act"), &y, SLOPE)
    };
    let blind = |g: &mut GraphBuilder, n: &str, c, x: &str| blind_biased(g, n, c, x, None);
    let open = |g: &mut GraphBuilder, n: &str, c, x: &str| {
        let y = conv_shared(g, n, &weights(n), c, x);
        leaky_slope(g, &format!("{n}.act"), &y, SLOPE)
    };
    let s0 = blind_biased(g, &format!("{name}.stem0"), &net.stem[0], x, stem_shift);
    let mut h = blind(g, &format!("{name}.stem1"), &net.stem[1], &s0);
    let mut gfeat = None;
    if let (Some(enc), Some(gd)) = (&net.guide, guide) {
        let a = open(g, &format!("{name}.gstem0"), &enc.stem[0], gd);
        let b = open(g, &format!("{name}.gstem1"), &enc.stem[1], &a);
        h = g.node("Add", &format!("{name}.stem.guide"), &[&h, &b], vec![]);
        gfeat = Some(b);
    }
    let depth = net.levels.len();
    let mut skips = vec![h.clone()];
    for (l, c) in net.levels.iter().enumerate() {
        let lv = format!("{name}.level{}", l + 1);
        let shifted = shift_down(g, &format!("{lv}.pool.shift"), &h);
        let pooled = g.node(
            "MaxPool",
            &format!("{lv}.pool"),
            &[&shifted],
            vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))],
        );
        h = blind(g, &lv, c, &pooled);
        if let (Some(enc), Some(prev)) = (&net.guide, gfeat.take()) {
            let gp = g.node(
                "AveragePool",
                &format!("{lv}.gpool"),
                &[&prev],
                vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))],
            );
            let next = open(g, &format!("{lv}.guide"), &enc.levels[l], &gp);
            h = g.node("Add", &format!("{lv}.guide.add"), &[&h, &next], vec![]);
            gfeat = Some(next);
        }
        if l + 1 < depth {
            skips.push(h.clone());
        }
    }
    for (k, up) in net.ups.iter().enumerate() {
        let lv = format!("{name}.up{k}");
        let skip = skips.pop().expect("one skip per level");
        let node = format!("{lv}.up");
        let u = conv_transpose_shared(g, &node, &weights(&node), &up.up, &h);
        let cat = g.node(
            "Concat",
            &format!("{lv}.concat"),
            &[&u, &skip],
            vec![("axis", Attr::Int(1))],
        );
        let a = blind(g, &format!("{lv}.conv1"), &up.conv1, &cat);
        h = blind(g, &format!("{lv}.conv2"), &up.conv2, &a);
    }
    shift_down(g, &format!("{name}.out.shift"), &h)
}

/// Rows moved down by one: one zero row on top, the last row dropped (negative pad).
fn shift_down(g: &mut GraphBuilder, name: &str, x: &str) -> String {
    // [N, C, top, left] begins, then [N, C, bottom, right] ends.
    let pads = g.initializer_i64("const.shift_down.pads", &[0, 0, 1, 0, 0, 0, -1, 0]);
    g.node("Pad", name, &[x, &pads], vec![])
}

/// `x` turned by `k` quarter turns, as `blind_spot::rotate`: 1 = transpose then reverse
/// the rows, 2 = reverse both, 3 = transpose then reverse the columns.
fn rotate(g: &mut GraphBuilder, name: &str, x: &str, k: usize) -> String {
    let transpose = |g: &mut GraphBuilder, x: &str| {
        g.node(
            "Transpose",
            &format!("{name}.t"),
            &[x],
            vec![("perm", Attr::Ints(vec![0, 1, 3, 2]))],
        )
    };
    match k % 4 {
        0 => x.to_string(),
        1 => {
            let t = transpose(g, x);
            reverse(g, name, &t, &[2])
        }
        2 => reverse(g, name, x, &[2, 3]),
        _ => {
            let t = transpose(g, x);
            reverse(g, name, &t, &[3])
        }
    }
}

/// `x` with `axes` reversed: a Slice from the last element backwards with step -1.
fn reverse(g: &mut GraphBuilder, name: &str, x: &str, axes: &[i64]) -> String {
    let n = axes.len();
    let key = axes.iter().map(i64::to_string).collect::<Vec<_>>().join("");
    let starts = g.initializer_i64(&format!("const.reverse{key}.starts"), &vec![-1; n]);
    let ends = g.initializer_i64(&format!("const.reverse{key}.ends"), &vec![i64::MIN; n]);
    let ax = g.initializer_i64(&format!("const.reverse{key}.axes"), axes);
    let steps = g.initializer_i64(&format!("const.reverse{key}.steps"), &vec![-1; n]);
    g.node("Slice", name, &[x, &starts, &ends, &ax, &steps], vec![])
}
