//! The skip wiring of each strategy, identity mapping at initialisation, and weight-0
//! losses, on a tiny model (2 channels, depth 2, 16 x 16) on the CPU.

use burn::prelude::*;
use crossdenoise_train::config::LossWeights;
use crossdenoise_train::model::strategy::CrossDomainStrategy;
use crossdenoise_train::model::{Domain, DualDomain, DualDomainConfig, ForwardPlan, Precision};
use crossdenoise_train::study::loss;

fn device() -> Device {
    let d = Device::flex();
    d.seed(7);
    d
}

fn model(identity: bool, device: &Device) -> DualDomain {
    DualDomainConfig::new(2, 2)
        .with_identity_mapping(identity)
        .init(device)
}

fn inputs(device: &Device) -> (Tensor<4>, Tensor<4>) {
    let a = Tensor::<4>::random(
        [2, 1, 16, 16],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        device,
    );
    let b = Tensor::<4>::random(
        [2, 1, 16, 16],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        device,
    );
    (a, b)
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn assert_same(a: Tensor<4>, b: Tensor<4>, what: &str) {
    let (a, b) = (values(a), values(b));
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max < 1e-6, "{what}: max difference {max}");
}

fn assert_differs(a: Tensor<4>, b: Tensor<4>, what: &str) {
    let (a, b) = (values(a), values(b));
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max > 1e-4, "{what}: outputs are the same");
}

fn plan(strategy: CrossDomainStrategy, alpha: f32) -> ForwardPlan {
    ForwardPlan {
        strategy,
        mixed_skip_alpha: alpha,
        recon: true,
        cross: true,
        precision: Precision::F32,
    }
}

#[test]
fn no_skip_decoders_receive_no_skips_on_either_path() {
    let dev = device();
    let m = model(false, &dev);
    let (xa, xb) = inputs(&dev);
    let out = m.forward(
        xa.clone(),
        xb.clone(),
        &plan(CrossDomainStrategy::NoSkip, 0.5),
    );
    let za = m.encoder(Domain::A).latent(xa.clone());
    let zb = m.encoder(Domain::B).latent(xb.clone());
    assert_same(
        out.recon_a.unwrap(),
        m.decoder_a.forward(za.clone(), None, None, Precision::F32),
        "recon a",
    );
    assert_same(
        out.recon_b.unwrap(),
        m.decoder_b.forward(zb.clone(), None, None, Precision::F32),
        "recon b",
    );
    assert_same(
        out.cross_a.unwrap(),
        m.decoder_a.forward(zb, None, None, Precision::F32),
        "cross a",
    );
    assert_same(
        out.cross_b.unwrap(),
        m.decoder_b.forward(za, None, None, Precision::F32),
        "cross b",
    );
    // and the exported path is the same computation
    let out = m.forward(xa, xb.clone(), &plan(CrossDomainStrategy::NoSkip, 0.5));
    assert_same(
        out.cross_a.unwrap(),
        m.translate(Domain::B, Domain::A, xb),
        "translate",
    );
}

#[test]
fn skip_strategies_wire_the_documented_skips() {
    let dev = device();
    let m = model(false, &dev);
    let (xa, xb) = inputs(&dev);
    let ea = m.encoder(Domain::A).forward(xa.clone(), Precision::F32);
    let eb = m.encoder(Domain::B).forward(xb.clone(), Precision::F32);
    let cross_a = |s, alpha| {
        m.forward(xa.clone(), xb.clone(), &plan(s, alpha))
            .cross_a
            .unwrap()
    };
    let with = |skips: &[Tensor<4>]| {
        m.decoder_a
            .forward(eb.z.clone(), Some(skips), None, Precision::F32)
    };

    // recon path: own skips for every strategy but no_skip
    let out = m.forward(
        xa.clone(),
        xb.clone(),
        &plan(CrossDomainStrategy::UseSourceSkip, 0.5),
    );
    assert_same(
        out.recon_a.unwrap(),
        m.decoder_a
            .forward(ea.z.clone(), Some(&ea.skips), None, Precision::F32),
        "recon own skips",
    );

    assert_same(
        cross_a(CrossDomainStrategy::UseTargetSkip, 0.5),
        with(&ea.skips),
        "target skips",
    );
    assert_same(
        cross_a(CrossDomainStrategy::UseSourceSkip, 0.5),
        with(&eb.skips),
        "source skips",
    );
    assert_differs(
        cross_a(CrossDomainStrategy::UseSourceSkip, 0.5),
        with(&ea.skips),
        "source vs target",
    );

    let zeros: Vec<Tensor<4>> = ea.skips.iter().map(Tensor::zeros_like).collect();
    assert_same(
        cross_a(CrossDomainStrategy::ZeroSkip, 0.5),
        with(&zeros),
        "zero skips",
    );

    assert_same(
        cross_a(CrossDomainStrategy::MixedSkip, 1.0),
        with(&ea.skips),
        "mixed alpha 1 = target",
    );
    assert_same(
        cross_a(CrossDomainStrategy::MixedSkip, 0.0),
        with(&eb.skips),
        "mixed alpha 0 = source",
    );
    let mix: Vec<Tensor<4>> = ea
        .skips
        .iter()
        .zip(&eb.skips)
        .map(|(t, s)| t.clone().mul_scalar(0.3) + s.clone().mul_scalar(0.7))
        .collect();
    assert_same(
        cross_a(CrossDomainStrategy::MixedSkip, 0.3),
        with(&mix),
        "mixed alpha 0.3",
    );
}

#[test]
fn identity_mapping_returns_the_source_input_at_initialisation() {
    let dev = device();
    let m = model(true, &dev);
    let (xa, xb) = inputs(&dev);
    assert_same(
        m.translate(Domain::B, Domain::A, xb.clone()),
        xb.clone(),
        "cross b->a",
    );
    let out = m.forward(
        xa.clone(),
        xb.clone(),
        &plan(CrossDomainStrategy::NoSkip, 0.5),
    );
    assert_same(out.cross_a.unwrap(), xb, "cross a is its source input");
    assert_same(out.recon_a.unwrap(), xa, "recon a is its input");
}

#[test]
fn shared_encoder_has_one_encoder() {
    let dev = device();
    let m = DualDomainConfig::new(2, 2)
        .with_shared_encoder(true)
        .init(&dev);
    assert!(m.encoder_b.is_none());
    let separate = DualDomainConfig::new(2, 2).init(&dev);
    assert!(m.num_params() < separate.num_params());
}

#[test]
fn a_zero_weight_loss_is_never_computed() {
    let dev = device();
    let m = model(false, &dev);
    let (xa, xb) = inputs(&dev);
    let w = LossWeights {
        content: 1.0,
        recon: 0.0,
        cross: 1.0,
        edge: 0.0,
    };
    let p = loss::plan(&w, CrossDomainStrategy::NoSkip, 0.5);
    assert!(!p.recon && p.cross);
    let out = m.forward(xa.clone(), xb.clone(), &p);
    assert!(
        out.recon_a.is_none() && out.recon_b.is_none(),
        "recon decoders ran"
    );
    let l = loss::compute(&out, xa.clone(), xb.clone(), &w);
    assert!(l.recon.is_none() && l.edge.is_none() && l.content.is_some() && l.cross.is_some());
    let v = l.values();
    assert!((v.total - (v.content.unwrap() + v.cross.unwrap())).abs() < 1e-6);

    // Content alone needs no decoder at all.
    let w = LossWeights {
        content: 1.0,
        recon: 0.0,
        cross: 0.0,
        edge: 0.0,
    };
    let p = loss::plan(&w, CrossDomainStrategy::NoSkip, 0.5);
    let out = m.forward(xa.clone(), xb.clone(), &p);
    assert!(out.cross_a.is_none() && out.recon_a.is_none());
    // Edge alone still runs the cross path, without the cross loss.
    let w = LossWeights {
        content: 0.0,
        recon: 0.0,
        cross: 0.0,
        edge: 1.0,
    };
    let out = m.forward(
        xa.clone(),
        xb.clone(),
        &loss::plan(&w, CrossDomainStrategy::NoSkip, 0.5),
    );
    let l = loss::compute(&out, xa, xb, &w);
    assert!(l.cross.is_none() && l.edge.is_some() && l.content.is_none());
}

#[test]
fn sobel_responds_to_ramps() {
    let dev = device();
    // x ramp: every interior pixel has d/dx = 1 -> Sobel x = 8, Sobel y = 0
    let ramp: Vec<f32> = (0..25).map(|i| (i % 5) as f32).collect();
    let x = Tensor::<1>::from_floats(ramp.as_slice(), &dev).reshape([1, 1, 5, 5]);
    let s = values(loss::sobel(x));
    let (gx, gy) = (&s[..25], &s[25..]);
    assert_eq!(gx[12], 8.0);
    assert_eq!(gy[12], 0.0);
}
