//! Preprocessing that every denoised slice pays for: normalise, pad, crop, inverse; the
//! posterior step after a model with a prior (Rician, and noncentral chi for coil arrays);
//! the prior's targets a training step computes on the host; and the phantom generator that
//! feeds training.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_image::{Normalization, Padding};

fn preprocessing(c: &mut Criterion) {
    let generator = PhantomGenerator::new(
        PhantomConfig {
            size: 320,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    // A 320 x 300 slice, as after oversampling removal: it needs padding to 320 x 304.
    let slice = generator
        .pair(0)
        .pd
        .slice(ndarray::s![.., ..300])
        .to_owned();
    let norm = Normalization::default();
    c.bench_function("preprocess/normalize+pad+crop+inverse 320x300", |b| {
        b.iter(|| {
            let (x, scale) = norm.normalize(black_box(slice.view())).unwrap();
            let pad = Padding::for_depth(x.nrows(), x.ncols(), 4).unwrap();
            let padded = pad.pad(x.view());
            let mut out = pad.crop(padded.view()).to_owned();
            norm.inverse_in_place(out.view_mut(), scale);
            out
        })
    });
    c.bench_function("preprocess/fit normalisation 320x300", |b| {
        b.iter(|| norm.fit(black_box(slice.view())).unwrap())
    });
}

/// The posterior of every pixel of a 256 x 256 slice as served: the body's outline (the
/// partner's tissue, here the slice's own means, filled), the floor prior fitted outside it,
/// then 48 bins a pixel, the likelihood of one coil (Rician) or of 8 and 15 coils (noncentral
/// chi, the Bessel function of order 7 and 14).
fn posterior(c: &mut Criterion) {
    use crossdenoise_image::floor_aware::partner_tissue;
    use crossdenoise_image::magnitude_bias::{BiasCorrection, noncentral_chi_mean};
    use crossdenoise_image::noise_map::map_relative_error;
    use crossdenoise_image::posterior::{PREDICTION_RELATIVE_ERROR, PriorPlanes, serve};
    let config = PhantomConfig {
        size: 256,
        ..Default::default()
    };
    let clean = PhantomGenerator::new(config, 0).unwrap().pair(0).clean_pd;
    let sigma = 0.05f32;
    for coils in [1u32, 8, 15] {
        let correction = BiasCorrection::for_coils(coils);
        // Observed and predicted at the magnitude's mean: every pixel on the posterior path
        // as in tissue, the air below the phase-in as served.
        let mean = clean
            .mapv(|a| (noncentral_chi_mean(f64::from(a / sigma), coils) * f64::from(sigma)) as f32);
        let spread = ndarray::Array2::from_elem(clean.dim(), -1.0f32);
        let shift = ndarray::Array2::zeros(clean.dim());
        let sigmas = ndarray::Array2::from_elem(clean.dim(), sigma);
        c.bench_function(&format!("posterior/256x256, {coils} coil(s)"), |b| {
            b.iter(|| {
                let prior = PriorPlanes {
                    spread: spread.view(),
                    shift: shift.view(),
                };
                let partner = partner_tissue(mean.view(), sigmas.view(), coils);
                serve(
                    &correction,
                    mean.view(),
                    mean.clone(),
                    Some(prior),
                    sigmas.view(),
                    Some(partner.view()),
                    // A coil array is served with a map, whose error is integrated out.
                    if coils > 1 {
                        map_relative_error(1).hypot(PREDICTION_RELATIVE_ERROR)
                    } else {
                        0.0
                    },
                )
            })
        });
    }
}

/// The collaborative Wiener filter of a 256 x 256 PD phantom at SNR 20 (acquired, with its
/// clean magnitude's mean as the pilot), every tissue pixel active: the part of the posterior
/// step above that groups and transforms blocks.
fn collaborative_wiener(c: &mut Criterion) {
    use crossdenoise_image::collaborative_wiener::filter;
    use crossdenoise_image::magnitude_bias::rician_mean;
    let config = PhantomConfig {
        size: 256,
        ..Default::default()
    };
    let pair = PhantomGenerator::new(config, 0).unwrap().pair(0);
    let sigma = 0.05f32;
    let pilot = pair
        .clean_pd
        .mapv(|a| (rician_mean(f64::from(a / sigma)) * f64::from(sigma)) as f32);
    let sigmas = ndarray::Array2::from_elem(pilot.dim(), sigma);
    let active = pair.clean_pd.mapv(|a| a > 2.0 * sigma);
    c.bench_function("posterior/collaborative wiener 256x256", |b| {
        b.iter(|| filter(pair.pd.view(), pilot.view(), sigmas.view(), active.view()))
    });
}

/// The prior's targets of one training step of `configs/guided.json` (batch 8 of 64 x 64
/// crops, a direction): the grid and the likelihood at its 48 bins for every pixel, on the
/// host, slice by slice on the thread pool (RAYON_NUM_THREADS=1 times it on one thread).
fn prior_targets(c: &mut Criterion) {
    use burn::tensor::Device;
    use crossdenoise_image::magnitude_bias::BiasCorrection;
    use crossdenoise_train::denoiser::prior::{HeadNow, targets};
    let generator = PhantomGenerator::new(
        PhantomConfig {
            size: 64,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let pairs: Vec<_> = (0..8).map(|i| generator.pair(i)).collect();
    let acquired: Vec<_> = pairs.iter().map(|p| p.pd.clone()).collect();
    let expected: Vec<_> = pairs.iter().map(|p| p.clean_pd.clone()).collect();
    let spread: Vec<_> = acquired.iter().map(|a| a.mapv(|_| -1.0f32)).collect();
    let shift: Vec<_> = acquired.iter().map(|a| a.mapv(|_| 0.0f32)).collect();
    let sigmas = vec![0.05f32; 8];
    let correction = BiasCorrection::for_coils(1);
    let device = Device::flex();
    c.bench_function("prior targets/8 x 64x64, 1 coil", |b| {
        b.iter(|| {
            let now = HeadNow {
                spread: &spread,
                shift: &shift,
            };
            targets(&correction, &expected, now, &acquired, &sigmas, &device)
        })
    });
}

fn phantoms(c: &mut Criterion) {
    for size in [128, 320] {
        let generator = PhantomGenerator::new(
            PhantomConfig {
                size,
                ..Default::default()
            },
            0,
        )
        .unwrap();
        c.bench_function(&format!("phantom/pair {size}x{size}"), |b| {
            b.iter(|| generator.pair(black_box(1)))
        });
    }
}

criterion_group!(
    benches,
    preprocessing,
    posterior,
    collaborative_wiener,
    prior_targets,
    phantoms
);
criterion_main!(benches);
