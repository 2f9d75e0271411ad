//! Preprocessing that every denoised slice pays for: normalise, pad, crop, inverse; and the
//! phantom generator that feeds training.

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

criterion_group!(benches, preprocessing, phantoms);
criterion_main!(benches);
