//! The Denoiser on the real ONNX Runtime (CPU build), checked against an independent
//! pipeline: numpy preprocessing + Python onnxruntime on the same model and input.

use crossdenoise_test_support as support;

use crossdenoise_image::AssumedMetadata;
use crossdenoise_image::io::{read_npy, write_npy};
use crossdenoise_image::normalize::Normalization;
use crossdenoise_image::orientation::oriented;
use crossdenoise_runtime::{Denoiser, DenoiserOptions, Error, ProviderKind, ProviderSettings};
use ndarray::Array2;
use support::{max_abs_diff, phantom_slices, reference, runtime, test_model};

fn cpu() -> DenoiserOptions {
    DenoiserOptions::default()
}

#[test]
fn matches_python_onnxruntime_on_odd_sizes_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "m.onnx", &["--size-multiple", "4"]);
    let mut denoiser = Denoiser::open(&runtime(), &model, &cpu()).unwrap();
    assert_eq!(denoiser.provider(), ProviderKind::Cpu);
    assert!(denoiser.fallbacks().is_empty());
    assert_eq!(denoiser.metadata().size_multiple, 4);
    assert_eq!(denoiser.metadata().path_label(), "pdfs (b) denoiser");

    // 37 x 50 needs padding in both axes; 48 x 48 none.
    for (h, w) in [(37, 50), (48, 48)] {
        let slices = phantom_slices(2, h, w);
        let batch = denoiser
            .denoise_batch(&[slices[0].view(), slices[1].view()])
            .unwrap();
        for (i, slice) in slices.iter().enumerate() {
            let input = dir.path().join(format!("in_{h}x{w}_{i}.npy"));
            let want = dir.path().join(format!("ref_{h}x{w}_{i}.npy"));
            write_npy(&input, slice.view()).unwrap();
            reference(&[
                "denoise",
                model.to_str().unwrap(),
                input.to_str().unwrap(),
                want.to_str().unwrap(),
            ]);
            let want = read_npy(&want).unwrap();
            let single = denoiser.denoise(slice.view()).unwrap();
            assert_eq!(single.dim(), (h, w), "cropped back to the input size");
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let err = max_abs_diff(&single, &want) / scale;
            assert!(err < 1e-5, "{h}x{w} slice {i}: relative error {err}");
            assert!(
                max_abs_diff(&batch[i], &single) / scale < 1e-5,
                "a batch gives what single slices give"
            );
            // The model really changed the image (it is not an identity).
            assert!(max_abs_diff(&single, slice) / scale > 1e-2);
        }
    }
}

#[test]
fn gpu_providers_fall_back_to_cpu_with_reasons_or_fail_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "m.onnx", &[]);
    let mut options = cpu();
    options.providers = ProviderSettings {
        order: ProviderSettings::parse_order("tensorrt,cuda,cpu").unwrap(),
        ..ProviderSettings::default()
    };
    let mut denoiser = Denoiser::open(&runtime(), &model, &options).unwrap();
    assert_eq!(denoiser.provider(), ProviderKind::Cpu);
    let skipped: Vec<_> = denoiser.fallbacks().iter().map(|f| f.provider).collect();
    assert_eq!(skipped, vec![ProviderKind::TensorRt, ProviderKind::Cuda]);
    for f in denoiser.fallbacks() {
        assert!(
            f.reason.contains(f.provider.ort_name()) && f.reason.contains("install-ort.sh --gpu"),
            "{}",
            f.reason
        );
    }
    let slice = &phantom_slices(1, 32, 32)[0];
    assert_eq!(denoiser.denoise(slice.view()).unwrap().dim(), (32, 32));

    // Without cpu in the list the CPU is still the last resort...
    options.providers.order = vec![ProviderKind::Cuda];
    let d = Denoiser::open(&runtime(), &model, &options).unwrap();
    assert_eq!(d.provider(), ProviderKind::Cpu);
    // ...unless --strict-ep.
    options.providers.strict = true;
    let e = Denoiser::open(&runtime(), &model, &options).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Provider {
                provider: ProviderKind::Cuda,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("strict"), "{e}");
}

#[test]
fn bad_models_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();

    let not_onnx = dir.path().join("notes.onnx");
    std::fs::write(&not_onnx, "this is not a protobuf").unwrap();
    let e = Denoiser::open(&rt, &not_onnx, &cpu())
        .unwrap_err()
        .to_string();
    assert!(e.contains("notes.onnx") && e.contains("not a model"), "{e}");

    let missing = dir.path().join("missing.onnx");
    let e = Denoiser::open(&rt, &missing, &cpu())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.onnx") && e.contains("no such file"),
        "{e}"
    );

    // A model that reads noise levels is fed them; one whose graph and metadata disagree
    // on how many, or whose `noise` input has another shape than its kind reads, is refused.
    let levels = test_model(dir.path(), "levels.onnx", &["--noise-input", "1"]);
    let mut d = Denoiser::open(&rt, &levels, &cpu()).unwrap();
    assert_eq!(d.noise_levels(), 1);
    assert_eq!(
        d.denoise(phantom_slices(1, 30, 30)[0].view())
            .unwrap()
            .dim(),
        (30, 30)
    );
    let unsaid = ["--noise-input", "1", "--noise-metadata", "2"];
    let unsaid = test_model(dir.path(), "unsaid.onnx", &unsaid);
    let e = Denoiser::open(&rt, &unsaid, &cpu())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unsaid.onnx") && e.contains("2 noise level(s)"),
        "{e}"
    );
    let three = test_model(dir.path(), "three.onnx", &["--noise-input", "3"]);
    let e = Denoiser::open(&rt, &three, &cpu()).unwrap_err().to_string();
    assert!(e.contains("`noise`") && e.contains("[N, 1]"), "{e}");

    let rank3 = test_model(dir.path(), "rank3.onnx", &["--rank3"]);
    let e = Denoiser::open(&rt, &rank3, &cpu()).unwrap_err().to_string();
    assert!(e.contains("rank3.onnx") && e.contains("rank 4"), "{e}");

    // No metadata: refused unless the caller states the normalisation.
    let bare = test_model(dir.path(), "bare.onnx", &["--no-metadata"]);
    let e = Denoiser::open(&rt, &bare, &cpu()).unwrap_err().to_string();
    assert!(
        e.contains("no crossdenoise metadata") && e.contains("--percentile"),
        "{e}"
    );
    let mut options = cpu();
    options.assume = Some(AssumedMetadata {
        normalization: Normalization::default(),
        size_multiple: 4,
    });
    let mut d = Denoiser::open(&rt, &bare, &options).unwrap();
    assert!(!d.has_metadata());
    assert_eq!(
        d.denoise(phantom_slices(1, 30, 30)[0].view())
            .unwrap()
            .dim(),
        (30, 30)
    );
}

#[test]
fn bad_slices_are_refused_and_the_denoiser_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "m.onnx", &[]);
    let mut d = Denoiser::open(&runtime(), &model, &cpu()).unwrap();

    let mut nan = phantom_slices(1, 32, 32).remove(0);
    nan[[3, 4]] = f32::NAN;
    let e = d.denoise(nan.view()).unwrap_err().to_string();
    assert!(e.contains("slice 0") && e.contains("non-finite"), "{e}");

    // A float slice near f32::MAX is finite, and so is the model's output, until it is
    // scaled back to the input's units: refused there, never written as inf.
    let huge = Array2::<f32>::from_elem((32, 32), 3e38);
    let e = d.denoise(huge.view()).unwrap_err().to_string();
    assert!(e.contains("non-finite values in the input's units"), "{e}");

    let a = Array2::<f32>::ones((32, 32));
    let b = Array2::<f32>::ones((32, 36));
    let e = d
        .denoise_batch(&[a.view(), b.view()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("slice 1 is 32x36"), "{e}");

    let empty = Array2::<f32>::zeros((0, 5));
    assert!(d.denoise(empty.view()).is_err());

    // An all-zero slice passes through (scale 1) rather than dividing by zero.
    let zeros = Array2::<f32>::zeros((32, 32));
    assert!(
        d.denoise(zeros.view())
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    );
    assert_eq!(d.denoise(a.view()).unwrap().dim(), (32, 32));
}

/// A slice larger than `tile_pixels` runs in overlapping tiles; with a receptive field
/// inside the margin, the result is the one pass over the whole slice, seams and all.
#[test]
fn a_large_slice_in_tiles_equals_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "m.onnx", &["--size-multiple", "4"]);
    let rt = runtime();
    let mut whole = Denoiser::open(&rt, &model, &cpu()).unwrap();
    let mut tiled = Denoiser::open(
        &rt,
        &model,
        &DenoiserOptions {
            // Tiles of 200 keeping their central 72: a 300 x 290 slice (padded to
            // 300 x 292) is cut into 5 x 5 of them.
            tile_pixels: 200 * 200,
            ..cpu()
        },
    )
    .unwrap();
    let slices = phantom_slices(2, 300, 290);
    let views: Vec<_> = slices.iter().map(|s| s.view()).collect();
    let a = whole.denoise_batch(&views).unwrap();
    let b = tiled.denoise_batch(&views).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.dim(), (300, 290));
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            max_abs_diff(a, b) <= 1e-5 * scale,
            "tiled differs by {} (scale {scale})",
            max_abs_diff(a, b)
        );
    }
}

#[test]
fn strength_blends_the_denoised_image_with_the_acquired_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "m.onnx", &[]);
    let slice = &phantom_slices(1, 32, 32)[0];
    let full = Denoiser::open(&runtime(), &model, &cpu())
        .unwrap()
        .denoise(slice.view())
        .unwrap();
    let mut denoiser = Denoiser::open(&runtime(), &model, &cpu()).unwrap();
    denoiser.set_strength(0.3).unwrap();
    let blended = denoiser.denoise(slice.view()).unwrap();
    let want = &full * 0.3 + slice * 0.7;
    assert!(max_abs_diff(&blended, &want) < 1e-3);
    for bad in [-0.1, 1.5, f32::NAN] {
        let Err(e) = denoiser.set_strength(bad) else {
            panic!("strength {bad} taken");
        };
        assert!(e.to_string().contains("strength"), "{e}");
    }
}

/// `img` in orientation (`turns`, `mirror`) (the image core's rule), as a new array.
fn orient(img: &Array2<f32>, turns: usize, mirror: bool) -> Array2<f32> {
    oriented(img.view(), turns, mirror)
        .as_standard_layout()
        .into_owned()
}

/// Averaging over the eight orientations is the mean of the eight oriented slices (with
/// their guides) denoised one by one and turned back, and differs from one pass of a model
/// that is not symmetric.
#[test]
fn averaging_orientations_is_the_mean_of_the_turned_passes() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "g.onnx", &["--guided", "--contrast", "pd"]);
    let averaged_options = DenoiserOptions {
        average_orientations: true,
        ..cpu()
    };
    let mut averaged = Denoiser::open(&runtime(), &model, &averaged_options).unwrap();
    let mut once = Denoiser::open(&runtime(), &model, &cpu()).unwrap();
    // 48 x 48: no padding, so each turned slice is padded as the slice itself.
    let slices = phantom_slices(2, 48, 48);
    let (image, guide) = (&slices[0], &slices[1]);
    let got = averaged
        .denoise_guided_batch(&[image.view()], &[guide.view()])
        .unwrap()
        .remove(0);
    let mut mean = Array2::<f32>::zeros(image.dim());
    for k in 0..8 {
        let (turns, mirror) = (k / 2, k % 2 == 1);
        let (i, g) = (orient(image, turns, mirror), orient(guide, turns, mirror));
        let out = once
            .denoise_guided_batch(&[i.view()], &[g.view()])
            .unwrap()
            .remove(0);
        // Back: undo the mirror, then the remaining quarter turns.
        let back = orient(&orient(&out, 0, mirror), 4 - turns % 4, false);
        mean += &back;
    }
    mean /= 8.0;
    let scale = image.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        max_abs_diff(&got, &mean) <= 1e-4 * scale,
        "{}",
        max_abs_diff(&got, &mean)
    );
    let single = once
        .denoise_guided_batch(&[image.view()], &[guide.view()])
        .unwrap()
        .remove(0);
    assert!(max_abs_diff(&got, &single) > 1e-3 * scale);
}
