//! Validation of the dual-domain network after each epoch: every path's scores on the
//! validation set, and the sample pictures.

use burn::prelude::*;
use crossdenoise_image::metrics::{self, Quality};
use crossdenoise_image::picture::Grid;
use ndarray::Array2;

use crate::config::Config;
use crate::data::{self, PairSet};
use crate::model::{DualDomain, ForwardPlan, Precision};
use crate::run::TrainError;
use crate::study::records::{PathScore, Validation};

/// Runs every path on the validation set's acquired images (no added noise: what the model
/// will see in service) and scores them.
pub fn validate(
    model: &DualDomain,
    val: &PairSet,
    plan: &ForwardPlan,
    batch: usize,
    device: &Device,
) -> Result<Validation, TrainError> {
    // In f32 whatever the training precision: the exported model runs in f32.
    let full = ForwardPlan {
        recon: true,
        cross: true,
        precision: Precision::F32,
        ..*plan
    };
    // Per path: psnr, ssim, psnr vs clean, ssim vs clean, sharpness vs clean.
    let mut sums = [[0.0f64; 5]; 6];
    let mut n = 0usize;
    let has_clean = val.clean.is_some();
    for start in (0..val.len()).step_by(batch) {
        let idx: Vec<usize> = (start..(start + batch).min(val.len())).collect();
        let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.a[i]).collect();
        let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.b[i]).collect();
        let out = model.forward(data::stack(&a, device), data::stack(&b, device), &full);
        let paths = [
            data::unstack(out.recon_a.expect("recon run")),
            data::unstack(out.recon_b.expect("recon run")),
            data::unstack(out.cross_a.expect("cross run")),
            data::unstack(out.cross_b.expect("cross run")),
        ];
        for (k, &i) in idx.iter().enumerate() {
            let targets = [&val.a[i], &val.b[i], &val.a[i], &val.b[i]];
            for p in 0..4 {
                let q = Quality::measure(targets[p].view(), paths[p][k].view())?;
                sums[p][0] += q.psnr;
                sums[p][1] += q.ssim;
                if let Some((ca, cb)) = &val.clean {
                    let clean = if p % 2 == 0 { &ca[i] } else { &cb[i] };
                    let q = Quality::measure(clean.view(), paths[p][k].view())?;
                    sums[p][2] += q.psnr;
                    sums[p][3] += q.ssim;
                    sums[p][4] +=
                        metrics::sharpness(clean.view(), paths[p][k].view())?.unwrap_or(1.0);
                }
            }
            if let Some((ca, cb)) = &val.clean {
                for (slot, clean, target) in [(4, &ca[i], &val.a[i]), (5, &cb[i], &val.b[i])] {
                    let q = Quality::measure(clean.view(), target.view())?;
                    sums[slot][2] += q.psnr;
                    sums[slot][3] += q.ssim;
                    sums[slot][4] +=
                        metrics::sharpness(clean.view(), target.view())?.unwrap_or(1.0);
                }
            }
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    let score = |s: &[f64; 5]| PathScore {
        psnr: s[0] / n,
        ssim: s[1] / n,
        psnr_clean: has_clean.then(|| s[2] / n),
        ssim_clean: has_clean.then(|| s[3] / n),
        sharpness: has_clean.then(|| s[4] / n),
    };
    let baseline = |s: &[f64; 5]| PathScore {
        psnr: s[2] / n,
        ssim: s[3] / n,
        psnr_clean: Some(s[2] / n),
        ssim_clean: Some(s[3] / n),
        sharpness: Some(s[4] / n),
    };
    Ok(Validation {
        recon_a: score(&sums[0]),
        recon_b: score(&sums[1]),
        cross_a: score(&sums[2]),
        cross_b: score(&sums[3]),
        baseline_a: has_clean.then(|| baseline(&sums[4])),
        baseline_b: has_clean.then(|| baseline(&sums[5])),
    })
}

/// Up to four validation pairs: each direction's noisy input | cross output | target (| clean).
pub fn sample_grid(
    model: &DualDomain,
    val: &PairSet,
    plan: &ForwardPlan,
    config: &Config,
    device: &Device,
) -> Result<Grid, TrainError> {
    let rows = val.len().min(4);
    let idx: Vec<usize> = (0..rows).collect();
    let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.a[i]).collect();
    let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.b[i]).collect();
    let full = ForwardPlan {
        cross: true,
        precision: Precision::F32,
        ..*plan
    };
    let out = model.forward(data::stack(&a, device), data::stack(&b, device), &full);
    let cross_a = data::unstack(out.cross_a.expect("cross run"));
    let cross_b = data::unstack(out.cross_b.expect("cross run"));
    let [na, nb] = &config.data.domains;
    let (na, nb) = (na.to_uppercase(), nb.to_uppercase());
    let mut titles = vec![
        format!("{nb} in"),
        format!("{na}<-{nb}"),
        format!("{na} target"),
    ];
    if val.clean.is_some() {
        titles.push(format!("{na} clean"));
    }
    titles.extend([
        format!("{na} in"),
        format!("{nb}<-{na}"),
        format!("{nb} target"),
    ]);
    if val.clean.is_some() {
        titles.push(format!("{nb} clean"));
    }
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let zoom = (128 / val.dim().1).max(1);
    let mut grid = Grid::zoomed(rows, titles.len(), val.dim(), zoom, &titles)?;
    const WINDOW: f32 = 1.1;
    for (r, &i) in idx.iter().enumerate() {
        let mut tiles: Vec<&Array2<f32>> = vec![&val.b[i], &cross_a[r], &val.a[i]];
        if let Some((ca, _)) = &val.clean {
            tiles.push(&ca[i]);
        }
        tiles.extend([&val.a[i], &cross_b[r], &val.b[i]]);
        if let Some((_, cb)) = &val.clean {
            tiles.push(&cb[i]);
        }
        for (c, tile) in tiles.into_iter().enumerate() {
            grid.set(r, c, tile.view(), WINDOW)?;
        }
    }
    Ok(grid)
}
