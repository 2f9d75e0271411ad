//! DICOM in and out, checked against an independent implementation: pydicom writes the
//! input series (MR Image Storage, realistic attributes) and reads the derived series back.

use crossdenoise_test_support as support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crossdenoise_image::dicom::{DicomSlice, new_uid};
use crossdenoise_image::io::write_npy;
use crossdenoise_runtime::denoise_files::{self, FileJob};
use crossdenoise_runtime::{Denoiser, DenoiserOptions};
use serde_json::Value;
use support::{compress, phantom_slices, reference, runtime, test_model};

/// Writes `n` phantom slices as a pydicom series of `kind` (u12 / s16) under `dir/series`.
fn write_series(dir: &Path, kind: &str, n: usize) -> (PathBuf, Vec<ndarray::Array2<f32>>) {
    let slices = phantom_slices(n, 40, 52);
    let series = dir.join(format!("series_{kind}"));
    fs::create_dir_all(&series).unwrap();
    let mut args = vec![
        "dicom-series".to_string(),
        series.display().to_string(),
        kind.to_string(),
    ];
    for (i, s) in slices.iter().enumerate() {
        let p = dir.join(format!("{kind}_{i}.npy"));
        write_npy(&p, s.view()).unwrap();
        args.push(p.display().to_string());
    }
    reference(&args);
    (series, slices)
}

/// pydicom's view of files: attributes as strings, pixel values after the rescale.
fn dump(files: &[PathBuf], dir: &Path) -> Vec<Value> {
    let out = dir.join(format!("dump_{}.json", rand_name()));
    let mut args: Vec<String> = vec!["dicom-dump".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.push(out.display().to_string());
    reference(&args);
    serde_json::from_str::<Value>(&fs::read_to_string(out).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn rand_name() -> u64 {
    rand::random()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn attrs(v: &Value) -> BTreeMap<String, Value> {
    v["attrs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn reads_independently_written_series_in_real_world_units() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, slope) in [("u12", 0.5f32), ("s16", 2.0)] {
        let (series, originals) = write_series(dir.path(), kind, 2);
        let files = files_in(&series);
        let theirs = dump(&files, dir.path());
        for ((file, original), their) in files.iter().zip(&originals).zip(&theirs) {
            let ours = DicomSlice::read(file).unwrap();
            assert_eq!(ours.image.dim(), (40, 52));
            assert_eq!(ours.signed, kind == "s16");
            assert_eq!(ours.bits_stored, if kind == "u12" { 12 } else { 16 });
            let values: Vec<f64> = their["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for (a, b) in ours.image.iter().zip(&values) {
                assert!(
                    (f64::from(*a) - b).abs() < 1e-3,
                    "{kind}: {a} vs pydicom {b}"
                );
            }
            // And both are the phantom, up to the stored quantisation and range (12 bits at
            // slope 0.5 end at 2047.5).
            let top = if kind == "u12" { 2047.5 } else { f32::INFINITY };
            for (a, o) in ours.image.iter().zip(original.iter()) {
                let o = o.min(top);
                assert!((a - o).abs() <= slope / 2.0 + 1e-3, "{kind}: {a} vs {o}");
            }
        }
    }
}

#[test]
fn derived_series_keeps_attributes_and_reads_back_in_pydicom() {
    let dir = tempfile::tempdir().unwrap();
    let model = test_model(dir.path(), "m.onnx", &[]);
    let mut denoiser = Denoiser::open(&runtime(), &model, &DenoiserOptions::default()).unwrap();
    for kind in ["u12", "s16"] {
        let (series, _) = write_series(dir.path(), kind, 3);
        let before: Vec<Vec<u8>> = files_in(&series)
            .iter()
            .map(|f| fs::read(f).unwrap())
            .collect();
        let out = dir.path().join(format!("out_{kind}"));
        let inputs = denoise_files::collect_inputs(std::slice::from_ref(&series)).unwrap();
        denoise_files::check_output_dir(&out, &inputs).unwrap();
        let mut job = FileJob::new();
        let mut expected = Vec::new();
        for input in &inputs {
            let outcome = job
                .denoise_file(&mut denoiser, input, None, &out, None)
                .unwrap();
            assert_eq!(
                outcome.output,
                out.join(format!("series_{kind}"))
                    .join(input.path.file_name().unwrap())
            );
            expected.push(
                denoiser
                    .denoise(DicomSlice::read(&input.path).unwrap().image.view())
                    .unwrap(),
            );
        }
        let after: Vec<Vec<u8>> = files_in(&series)
            .iter()
            .map(|f| fs::read(f).unwrap())
            .collect();
        assert_eq!(before, after, "inputs untouched");

        let originals = dump(&files_in(&series), dir.path());
        let derived = dump(&files_in(&out.join(format!("series_{kind}"))), dir.path());
        assert_eq!(derived.len(), 3);
        let new_series = derived[0]["attrs"]["SeriesInstanceUID"].clone();
        let mut sop_uids = std::collections::HashSet::new();
        for ((orig, der), want) in originals.iter().zip(&derived).zip(&expected) {
            let (a, b) = (attrs(orig), attrs(der));
            let changed = [
                "SOPInstanceUID",
                "MediaStorageSOPInstanceUID",
                "SeriesInstanceUID",
                "SeriesDescription",
                "SeriesNumber",
                "ImageType",
            ];
            for (key, value) in &a {
                if !changed.contains(&key.as_str()) {
                    assert_eq!(b.get(key), Some(value), "{kind}: {key} carried over");
                }
            }
            assert!(b.contains_key("DerivationDescription"));
            assert_ne!(b["SOPInstanceUID"], a["SOPInstanceUID"]);
            assert_eq!(b["SOPInstanceUID"], b["MediaStorageSOPInstanceUID"]);
            assert!(sop_uids.insert(b["SOPInstanceUID"].to_string()));
            assert_eq!(b["SeriesInstanceUID"], new_series, "one derived series");
            assert_ne!(b["SeriesInstanceUID"], a["SeriesInstanceUID"]);
            assert_eq!(b["SeriesDescription"], "PD_FS_COR denoised");
            // A series of its own: the source's number + 1000 (the default offset).
            let number = |v: &Value| v.as_str().unwrap().trim().parse::<i64>().unwrap();
            assert_eq!(
                number(&b["SeriesNumber"]),
                number(&a["SeriesNumber"]) + 1000
            );
            let image_type: Vec<&str> = b["ImageType"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(image_type, ["DERIVED", "PRIMARY", "M", "ND"]);
            assert_eq!(der["stored_dtype"], orig["stored_dtype"]);

            let slope: f64 = b["RescaleSlope"].as_str().unwrap().parse().unwrap();
            let intercept: f64 = b["RescaleIntercept"].as_str().unwrap().parse().unwrap();
            let (lo, hi) = if kind == "u12" {
                (0.0, 4095.0)
            } else {
                (-32768.0, 32767.0)
            };
            let values = der["values"].as_array().unwrap();
            assert_eq!(values.len(), want.len());
            for (v, w) in values.iter().zip(want.iter()) {
                let v = v.as_f64().unwrap();
                // The denoiser's value, on the stored grid and within the stored range.
                let w = f64::from(*w).clamp(lo * slope + intercept, hi * slope + intercept);
                assert!(
                    (v - w).abs() <= slope / 2.0 + 1e-3,
                    "{kind}: pydicom reads {v}, denoiser gave {w}"
                );
            }
        }
        assert_eq!(
            der_dtype(&derived),
            if kind == "u12" { "uint16" } else { "int16" }
        );
    }
}

fn der_dtype(derived: &[Value]) -> String {
    derived[0]["stored_dtype"].as_str().unwrap().to_string()
}

fn holds(file: &Path, text: &str) -> bool {
    fs::read(file)
        .unwrap()
        .windows(text.len())
        .any(|w| w == text.as_bytes())
}

/// JPEG Lossless (compressed by DCMTK), RLE Lossless and JPEG 2000 (by pydicom and
/// OpenJPEG) decode to the uncompressed series' very values, lossy JPEG 2000 to values
/// close to them; a slice derived from a compressed one is written uncompressed and reads
/// back as written.
#[test]
fn compressed_series_decode_to_the_values_of_the_uncompressed_one() {
    const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1\0";
    let dir = tempfile::tempdir().unwrap();
    for kind in ["u12", "s16"] {
        let (series, _) = write_series(dir.path(), kind, 2);
        let plain: Vec<DicomSlice> = files_in(&series)
            .iter()
            .map(|f| DicomSlice::read(f).unwrap())
            .collect();
        for (syntax, uid, lossless) in [
            ("jpeg-lossless", "1.2.840.10008.1.2.4.70", true),
            ("rle", "1.2.840.10008.1.2.5", true),
            ("j2k", "1.2.840.10008.1.2.4.90", true),
            ("j2k-lossy", "1.2.840.10008.1.2.4.91", false),
        ] {
            let files = compress(
                &files_in(&series),
                syntax,
                &dir.path().join(format!("{kind}_{syntax}")),
            );
            for (file, plain) in files.iter().zip(&plain) {
                assert!(holds(file, uid), "{kind} {syntax}: not in {uid}");
                let slice =
                    DicomSlice::read(file).unwrap_or_else(|e| panic!("{kind} {syntax}: {e}"));
                assert_eq!(slice.rescale_slope, plain.rescale_slope);
                if lossless {
                    assert_eq!(slice.image, plain.image, "{kind} {syntax}");
                } else {
                    // Lossy: the values OpenJPEG itself decodes (pydicom through
                    // pylibjpeg), within one stored step.
                    let theirs = &dump(std::slice::from_ref(file), dir.path())[0]["values"];
                    let theirs = theirs.as_array().unwrap();
                    assert_eq!(theirs.len(), slice.image.len());
                    for (a, b) in slice.image.iter().zip(theirs) {
                        let b = b.as_f64().unwrap();
                        assert!(
                            (f64::from(*a) - b).abs() <= slice.rescale_slope.abs() + 1e-6,
                            "{kind} {syntax}: {a} against {b}"
                        );
                    }
                    assert_ne!(slice.image, plain.image, "{kind} {syntax}: lossy");
                }
                let derived = slice
                    .derive(
                        slice.image.view(),
                        &new_uid(),
                        "denoised",
                        &crossdenoise_image::lineage::Lineage::new("test", None),
                    )
                    .unwrap();
                let out = dir.path().join(format!("derived_{kind}_{syntax}.dcm"));
                DicomSlice::write(&derived, &out).unwrap();
                assert!(holds(&out, EXPLICIT_VR_LE) && !holds(&out, uid), "{syntax}");
                assert_eq!(DicomSlice::read(&out).unwrap().image, slice.image);
            }
        }
    }
}

#[test]
fn compressed_and_corrupt_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // JPEG-LS has no decoder in this build: refused by name, a stub or a real codestream.
    let stub = dir.path().join("stub.dcm");
    reference(&["dicom-compressed", stub.to_str().unwrap()]);
    let (series, _) = write_series(dir.path(), "u12", 1);
    let jls = compress(&files_in(&series), "jpeg-ls", &dir.path().join("jls"));
    for file in [&stub, &jls[0]] {
        let e = DicomSlice::read(file).unwrap_err().to_string();
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            e.contains(name) && e.contains("JPEG-LS") && e.contains("1.2.840.10008.1.2.4.80"),
            "{e}"
        );
    }

    let good = files_in(&series).remove(0);
    let bytes = fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.dcm");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = DicomSlice::read(&truncated).unwrap_err().to_string();
    assert!(e.contains("truncated.dcm"), "{e}");

    // Headers that promise more than the file holds: refused, never allocated for.
    let patch = |name: &str, tag: &[u8], value: &[u8]| {
        let mut b = bytes.clone();
        let at = b
            .windows(tag.len())
            .rposition(|w| w == tag)
            .expect("tag in file")
            + tag.len();
        b[at..at + value.len()].copy_from_slice(value);
        let p = dir.path().join(name);
        fs::write(&p, b).unwrap();
        p
    };
    // Rows and Columns (explicit VR little endian: tag, "US", length 2, value).
    let huge = patch(
        "huge_rows.dcm",
        b"\x28\x00\x10\x00US\x02\x00",
        &[0xFF, 0xFF],
    );
    let mut b = fs::read(&huge).unwrap();
    let at = b
        .windows(8)
        .position(|w| w == b"\x28\x00\x11\x00US\x02\x00")
        .unwrap()
        + 8;
    b[at..at + 2].copy_from_slice(&[0xFF, 0xFF]);
    fs::write(&huge, b).unwrap();
    let e = DicomSlice::read(&huge).unwrap_err().to_string();
    assert!(
        e.contains("huge_rows.dcm") && e.contains("Rows 65535 x Columns 65535"),
        "{e}"
    );
    // PixelData's own length (OW: tag, VR, 2 reserved bytes, 4-byte length).
    let long = patch(
        "long_pixels.dcm",
        b"\xE0\x7F\x10\x00OW\x00\x00",
        &0x7FFF_FFF0u32.to_le_bytes(),
    );
    let e = DicomSlice::read(&long).unwrap_err().to_string();
    assert!(e.contains("long_pixels.dcm"), "{e}");

    let garbage = dir.path().join("garbage.dcm");
    fs::write(&garbage, b"not dicom at all").unwrap();
    let e = DicomSlice::read(&garbage).unwrap_err().to_string();
    assert!(
        e.contains("garbage.dcm") && e.contains("not a readable DICOM"),
        "{e}"
    );
}

/// A pydicom series of `n` slices under `dir/name`, in frame of reference `frame`, slice
/// positions moved by `offset` mm.
fn partner_series(dir: &Path, name: &str, n: usize, frame: &str, offset: f32) -> PathBuf {
    let series = dir.join(name);
    fs::create_dir_all(&series).unwrap();
    let mut args = vec![
        "dicom-series".to_string(),
        series.display().to_string(),
        "u12".to_string(),
    ];
    for (i, s) in phantom_slices(n, 40, 52).iter().enumerate() {
        let p = dir.join(format!("{name}_{i}.npy"));
        write_npy(&p, s.view()).unwrap();
        args.push(p.display().to_string());
    }
    args.extend([
        "--frame".into(),
        frame.into(),
        "--offset".into(),
        offset.to_string(),
        "--description".into(),
        name.into(),
    ]);
    reference(&args);
    series
}

#[test]
fn guides_pair_by_geometry_and_strangers_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let frame = "2.25.1234567890";
    let pd = partner_series(dir.path(), "PD_COR", 3, frame, 0.0);
    // The PDFS series of the same frame, each slice 1 mm off (under half the 3 mm
    // thickness), and one of another frame of reference.
    let pdfs = partner_series(dir.path(), "PD_FS_COR", 3, frame, 1.0);
    let other = partner_series(dir.path(), "OTHER", 3, "2.25.999", 0.0);
    let inputs = denoise_files::collect_inputs(std::slice::from_ref(&pd)).unwrap();
    let guides = denoise_files::collect_inputs(std::slice::from_ref(&pdfs)).unwrap();
    let paired = denoise_files::pair_guides(&inputs, &guides).unwrap();
    assert_eq!(paired, files_in(&pdfs), "slice i pairs with slice i");

    let strangers = denoise_files::collect_inputs(&[other]).unwrap();
    let e = denoise_files::pair_guides(&inputs, &strangers)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("3 input(s) have no usable guide"), "{e}");
    assert!(
        e.contains("slice_000.dcm: no guide slice in frame of reference 2.25.1234567890"),
        "{e}"
    );
    // Two slices off by more than half a thickness find no partner either.
    let far = partner_series(dir.path(), "FAR", 3, frame, 1.8);
    let far = denoise_files::collect_inputs(&[far]).unwrap();
    assert!(denoise_files::pair_guides(&inputs, &far).is_err());
}

/// `file` rewritten to `to` with `edit` applied to its data set.
fn edited(file: &Path, to: &Path, edit: impl FnOnce(&mut dicom_object::DefaultDicomObject)) {
    let mut obj = dicom_object::open_file(file).unwrap();
    edit(&mut obj);
    obj.write_to_file(to).unwrap();
}

#[test]
fn values_a_magnitude_image_cannot_hold_are_refused_by_name_and_an_empty_slice_stays_empty() {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (series, _) = write_series(d, "s16", 1);
    let file = files_in(&series)[0].clone();
    let put = |obj: &mut dicom_object::DefaultDicomObject, tag, vr, v: &str| {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    };
    // A negative RescaleIntercept: real-world values below 0.
    let negative = d.join("negative.dcm");
    edited(&file, &negative, |o| {
        put(o, tags::RESCALE_INTERCEPT, VR::DS, "-1000")
    });
    // Signed stored values offset by -2000 without a rescale.
    let offset = d.join("offset.dcm");
    edited(&file, &offset, |o| {
        put(o, tags::RESCALE_INTERCEPT, VR::DS, "0");
        put(o, tags::RESCALE_SLOPE, VR::DS, "1");
    });
    let inverted = d.join("inverted.dcm");
    edited(&file, &inverted, |o| {
        put(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME1")
    });
    for (f, names) in [
        (&negative, ["real-world values", "RescaleIntercept -1000"]),
        (&offset, ["real-world values", "PixelRepresentation 1"]),
        (&inverted, ["PhotometricInterpretation", "MONOCHROME1"]),
    ] {
        let Err(e) = DicomSlice::read(f) else {
            panic!("{} was read", f.display());
        };
        let e = e.to_string();
        assert!(names.iter().all(|n| e.contains(n)), "{e}");
    }

    // An all-zero slice comes back all zero, through the whole file path.
    let zero_dir = d.join("zero");
    let zero = ndarray::Array2::<f32>::zeros((40, 52));
    let zero_file = support::dicom_series(&zero_dir, "u12", &[zero], &[])[0].clone();
    let model = test_model(d, "m.onnx", &[]);
    let mut denoiser = Denoiser::open(&runtime(), &model, &DenoiserOptions::default()).unwrap();
    let inputs = denoise_files::collect_inputs(std::slice::from_ref(&zero_dir)).unwrap();
    let out = d.join("out");
    let mut job = FileJob::new();
    let input = inputs.iter().find(|i| i.path == zero_file).unwrap();
    let outcome = job
        .denoise_file(&mut denoiser, input, None, &out, None)
        .unwrap();
    let back = DicomSlice::read(&outcome.output).unwrap();
    assert!(back.image.iter().all(|&v| v == 0.0));
}
