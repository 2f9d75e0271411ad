//! What a DICOM series states of its acquisition (In-plane Phase Encoding Direction,
//! Parallel Reduction Factor In-plane) sets how a coil-array model's noise maps are read,
//! over the configuration: files written by pydicom, served through ONNX Runtime.

use crossdenoise_test_support as support;

use std::path::Path;

use crossdenoise_image::dicom::DicomSlice;
use crossdenoise_image::noise_map::{PhaseEncoding, Stated};
use crossdenoise_runtime::denoise_files::{self, FileJob, InputFile};
use crossdenoise_runtime::{Denoiser, DenoiserOptions};
use ndarray::Array2;
use support::{phantom_slices, runtime, test_model};

/// A series says which way its phase encoding ran (In-plane Phase Encoding Direction): a
/// coil-array model's noise maps are narrowed across it, pooled over the series and for a
/// slice served alone alike, though the configuration states no direction.
#[test]
fn the_phase_encoding_a_series_states_shapes_its_noise_maps() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "coil.onnx", &["--noise-coils", "8"]);
    // Twice the noise in the lower half: the map changes from row to row. Half the
    // phantom's scale keeps the values inside the 12-bit range.
    let slices: Vec<_> = phantom_slices(3, 96, 96)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sigma = |r, _| if r < 48 { 20.0 } else { 40.0 };
            support::rician(&(s * 0.5), sigma, i as u64)
        })
        .collect();
    let series = dir.path().join("stated");
    let flags = ["--phase-encoding".to_string(), "COL".to_string()];
    let files = support::dicom_series(&series, "u12", &slices, &flags);
    for f in &files {
        let stated = DicomSlice::read(f).unwrap().phase_encoding();
        assert_eq!(stated, Some(PhaseEncoding::UpDown), "{}", f.display());
    }
    let images: Vec<_> = files
        .iter()
        .map(|f| DicomSlice::read(f).unwrap().image)
        .collect();
    let told = |phase_encoding| Stated {
        phase_encoding,
        acceleration: None,
    };
    for pooled in [true, false] {
        let out = dir.path().join(format!("out_{pooled}"));
        let written = job_output(&model, &files, &out, pooled, &DenoiserOptions::default());
        let along = served(&model, &images, told(Some(PhaseEncoding::UpDown)), pooled);
        let square = served(&model, &images, told(None), pooled);
        let apart = steps_apart(&written, &along, &square, &format!("pooled {pooled}"));
        assert!(
            apart.iter().any(|d| *d > 2.0),
            "pooled {pooled}: served on square tiles ({apart:?} rescale steps apart)"
        );
    }
}

/// How many rescale steps each `written` slice is from `other`'s, after asserting it is
/// within one of `expected`'s (`what` names the case). The unsigned 12-bit files hold no
/// value under 0, so both are compared clipped there.
fn steps_apart(
    written: &[DicomSlice],
    expected: &[Array2<f32>],
    other: &[Array2<f32>],
    what: &str,
) -> Vec<f32> {
    let clipped = |a: &Array2<f32>| a.mapv(|v| v.max(0.0));
    written
        .iter()
        .enumerate()
        .map(|(i, output)| {
            let slope = output.rescale_slope as f32;
            let worst = support::max_abs_diff(&clipped(&expected[i]), &output.image);
            assert!(worst <= slope, "{what}, slice {i}: {worst}");
            support::max_abs_diff(&clipped(&other[i]), &output.image) / slope
        })
        .collect()
}

/// The denoised slices of `files` as `FileJob` writes them (pooled over the series first,
/// or each alone), read back.
fn job_output(
    model: &Path,
    files: &[std::path::PathBuf],
    out: &Path,
    pooled: bool,
    options: &DenoiserOptions,
) -> Vec<DicomSlice> {
    let inputs = denoise_files::collect_inputs(files).unwrap();
    let mut denoiser = Denoiser::open(&runtime(), model, options).unwrap();
    let mut job = FileJob::new();
    if pooled {
        let all: Vec<&InputFile> = inputs.iter().collect();
        job.prepare_series(&mut denoiser, &all, None).unwrap();
    }
    inputs
        .iter()
        .map(|f| {
            job.denoise_file(&mut denoiser, f, None, out, None).unwrap();
            DicomSlice::read(&out.join(&f.output)).unwrap()
        })
        .collect()
}

/// `images` denoised by the runtime told `stated`, pooled over the series first or each
/// alone.
fn served(model: &Path, images: &[Array2<f32>], stated: Stated, pooled: bool) -> Vec<Array2<f32>> {
    let mut denoiser = Denoiser::open(&runtime(), model, &DenoiserOptions::default()).unwrap();
    denoiser.set_stated(stated);
    let views: Vec<_> = images.iter().map(|i| i.view()).collect();
    if pooled {
        denoiser.prepare_series(&views, None).unwrap();
    }
    views
        .iter()
        .map(|v| denoiser.denoise_batch(&[*v]).unwrap().remove(0))
        .collect()
}

/// A series states parallel imaging's acceleration (Parallel Reduction Factor In-plane):
/// a coil-array model's noise maps are read between its fold lines, where the phantoms'
/// g-factor map jumps at acceleration 3, though the configuration states none; told
/// nothing, or told not to count a stated acceleration, the same slices are read whole, as
/// is each slice alone (192 x 192: too few blocks to tell a jump from a strip read badly).
#[test]
fn the_acceleration_a_series_states_reads_its_noise_maps_between_the_fold_lines() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "coil.onnx", &["--noise-coils", "8"]);
    // Phase encoded along the rows. A third of the phantom's scale keeps the denoised
    // values inside the 12-bit range.
    let slices = support::accelerated_slices(3, 192, 300.0);
    let series = dir.path().join("accelerated");
    let flags = ["--phase-encoding", "ROW", "--acceleration", "3"].map(String::from);
    let files = support::dicom_series(&series, "u12", &slices, &flags);
    let read: Vec<_> = files.iter().map(|f| DicomSlice::read(f).unwrap()).collect();
    for (slice, f) in read.iter().zip(&files) {
        assert_eq!(slice.acceleration(), Some(3), "{}", f.display());
    }
    let images: Vec<_> = read.into_iter().map(|s| s.image).collect();
    let told = |acceleration| Stated {
        phase_encoding: Some(PhaseEncoding::LeftRight),
        acceleration,
    };
    for pooled in [true, false] {
        let out = dir.path().join(format!("out_{pooled}"));
        let written = job_output(&model, &files, &out, pooled, &DenoiserOptions::default());
        let between = served(&model, &images, told(Some(3)), pooled);
        let whole = served(&model, &images, told(None), pooled);
        let apart = steps_apart(&written, &between, &whole, &format!("pooled {pooled}"));
        if pooled {
            assert!(
                apart.iter().any(|d| *d > 2.0),
                "pooled: read whole ({apart:?} rescale steps apart)"
            );
        } else {
            assert!(
                apart.iter().all(|d| *d <= 1.0),
                "alone: read between ({apart:?} rescale steps apart)"
            );
        }
        let uncounted = DenoiserOptions {
            stated_acceleration: false,
            ..DenoiserOptions::default()
        };
        let out = dir.path().join(format!("uncounted_{pooled}"));
        let written = job_output(&model, &files, &out, pooled, &uncounted);
        steps_apart(
            &written,
            &whole,
            &whole,
            &format!("uncounted, pooled {pooled}"),
        );
    }
}
