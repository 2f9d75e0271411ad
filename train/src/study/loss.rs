//! The four losses (docs/DESIGN.md, "The losses"), all L1 means, weighted by the config.
//!
//! A loss with weight 0 is not computed at all — and a path no weighted loss needs is not
//! even run (see [`plan`]) — so an ablation measures the model without that term, not with a
//! term multiplied by zero.

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::config::LossWeights;
use crate::model::strategy::CrossDomainStrategy;
use crate::model::{ForwardPlan, Outputs, Precision};

/// The losses of one step; `None` where the weight is 0.
#[derive(Debug, Clone)]
pub struct Losses {
    pub content: Option<Tensor<1>>,
    pub recon: Option<Tensor<1>>,
    pub cross: Option<Tensor<1>>,
    pub edge: Option<Tensor<1>>,
    pub total: Tensor<1>,
}

/// The values of one step's losses, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossValues {
    pub total: f32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recon: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cross: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub edge: Option<f32>,
}

impl LossValues {
    /// The values as numbers (absent losses as 0), for averaging over processes.
    pub(crate) fn to_array(self) -> [f32; 5] {
        let v = |o: Option<f32>| o.unwrap_or(0.0);
        [
            self.total,
            v(self.content),
            v(self.recon),
            v(self.cross),
            v(self.edge),
        ]
    }

    /// These losses with the values of `to_array`'s numbers (absent ones stay absent).
    pub(crate) fn with_array(self, [total, content, recon, cross, edge]: [f32; 5]) -> Self {
        LossValues {
            total,
            content: self.content.map(|_| content),
            recon: self.recon.map(|_| recon),
            cross: self.cross.map(|_| cross),
            edge: self.edge.map(|_| edge),
        }
    }
}

impl Losses {
    pub fn values(&self) -> LossValues {
        let v = |t: &Option<Tensor<1>>| t.as_ref().map(|t| t.clone().into_scalar::<f32>());
        LossValues {
            total: self.total.clone().into_scalar::<f32>(),
            content: v(&self.content),
            recon: v(&self.recon),
            cross: v(&self.cross),
            edge: v(&self.edge),
        }
    }
}

/// Which decoder paths the weights need: recon only for the recon loss, the cross path for
/// the cross and edge losses. The convolutions compute in f32 unless the caller sets the
/// plan's precision.
pub fn plan(
    weights: &LossWeights,
    strategy: CrossDomainStrategy,
    mixed_skip_alpha: f32,
) -> ForwardPlan {
    ForwardPlan {
        strategy,
        mixed_skip_alpha,
        recon: weights.recon > 0.0,
        cross: weights.cross > 0.0 || weights.edge > 0.0,
        precision: Precision::F32,
    }
}

fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    (a - b).abs().mean()
}

/// Horizontal and vertical Sobel responses, `[N, 1, H, W] -> [N, 2, H, W]` (zero padding).
pub fn sobel(x: Tensor<4>) -> Tensor<4> {
    #[rustfmt::skip]
    let k: [f32; 18] = [
        -1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0, // x
        -1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0, // y
    ];
    let weight = Tensor::<1>::from_floats(k, &x.device()).reshape([2, 1, 3, 3]);
    conv2d(x, weight, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
}

/// Computes the weighted losses of a forward pass against the dataset targets.
pub fn compute(out: &Outputs, target_a: Tensor<4>, target_b: Tensor<4>, w: &LossWeights) -> Losses {
    let content = (w.content > 0.0).then(|| (out.z_a.clone() - out.z_b.clone()).abs().mean());
    let pair = |a: &Option<Tensor<4>>, b: &Option<Tensor<4>>, name: &str| match (a, b) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => panic!("the {name} path was not run but its loss has a weight"),
    };
    let recon = (w.recon > 0.0).then(|| {
        let (ra, rb) = pair(&out.recon_a, &out.recon_b, "recon");
        l1(ra, target_a.clone()) + l1(rb, target_b.clone())
    });
    let cross = (w.cross > 0.0).then(|| {
        let (ca, cb) = pair(&out.cross_a, &out.cross_b, "cross");
        l1(ca, target_a.clone()) + l1(cb, target_b.clone())
    });
    let edge = (w.edge > 0.0).then(|| {
        let (ca, cb) = pair(&out.cross_a, &out.cross_b, "cross");
        l1(sobel(ca), sobel(target_a.clone())) + l1(sobel(cb), sobel(target_b.clone()))
    });
    let mut total: Option<Tensor<1>> = None;
    for (loss, weight) in [
        (&content, w.content),
        (&recon, w.recon),
        (&cross, w.cross),
        (&edge, w.edge),
    ] {
        if let Some(l) = loss {
            let term = l.clone().mul_scalar(weight);
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
    }
    Losses {
        content,
        recon,
        cross,
        edge,
        total: total.expect("config validation guarantees one non-zero weight"),
    }
}
