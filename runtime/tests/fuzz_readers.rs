//! The file readers under generated and mutated input: a `.npy`, PNG or DICOM file with
//! bytes changed, cut short or appended to is read or refused with an error, never a panic,
//! and never with an allocation out of proportion to the file (a header's claims are
//! checked against the bytes that back them). `PROPTEST_CASES` sets the cases per reader.

use crossdenoise_test_support::fuzz::{self, Recording};

#[global_allocator]
static ALLOCATOR: Recording = Recording;
use crossdenoise_test_support as support;

use std::fs;
use std::path::Path;

use crossdenoise_image::dicom::DicomSlice;
use crossdenoise_image::io::{GrayImage, read_npy, read_png, write_npy, write_png};
use fuzz::{cases, largest_allocation, mutation};
use ndarray::Array2;
use proptest::prelude::*;

/// The most a reader may allocate at once for a file of `len` bytes: the decoded pixels
/// of a compressed PNG (deflate expands ~1032:1) or of u16 data as f32 and f64, with room.
fn justified(len: usize) -> usize {
    len.saturating_mul(1100).saturating_add(1 << 20)
}

/// Writes `bytes` to a file and reads it with `read`, checking the allocation bound.
fn read_mutated<T, E: std::fmt::Display>(
    name: &str,
    bytes: &[u8],
    read: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    let (result, largest) = largest_allocation(|| read(&path).map(|_| ()));
    prop_assert!(
        largest <= justified(bytes.len()),
        "{} bytes allocated at once for a {}-byte file",
        largest,
        bytes.len()
    );
    if let Err(e) = result {
        prop_assert!(
            e.to_string().contains(name),
            "the error names the file: {}",
            e
        );
    }
    Ok(())
}

fn seed_npy() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("seed.npy");
    let image = Array2::from_shape_fn((6, 8), |(r, c)| (r * 8 + c) as f32);
    write_npy(&p, image.view()).unwrap();
    fs::read(p).unwrap()
}

fn seed_png(sixteen: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("seed.png");
    let image = if sixteen {
        GrayImage::U16(Array2::from_shape_fn((6, 8), |(r, c)| (r * 800 + c) as u16))
    } else {
        GrayImage::U8(Array2::from_shape_fn((6, 8), |(r, c)| (r * 8 + c) as u8))
    };
    write_png(&p, &image).unwrap();
    fs::read(p).unwrap()
}

/// The seed as pydicom writes it (`uncompressed`), or compressed in `syntax` (see
/// `support::compress`): the decoders read untrusted bytes too.
fn seed_dicom(syntax: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let slice = dir.path().join("s.npy");
    // 32 x 32: OpenJPEG encodes no smaller with its default resolution levels.
    write_npy(&slice, support::phantom_slices(1, 32, 32)[0].view()).unwrap();
    let series = dir.path().join("series");
    fs::create_dir_all(&series).unwrap();
    support::reference(&[
        "dicom-series".into(),
        series.display().to_string(),
        "u12".into(),
        slice.display().to_string(),
    ]);
    let file = fs::read_dir(&series)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    if syntax == "uncompressed" {
        return fs::read(file).unwrap();
    }
    let compressed = support::compress(&[file], syntax, &dir.path().join(syntax));
    fs::read(&compressed[0]).unwrap()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_npy_files_are_read_or_refused(m in mutation()) {
        let bytes = m.apply(&seed_npy());
        read_mutated("m.npy", &bytes, read_npy)?;
    }

    #[test]
    fn arbitrary_bytes_are_refused_as_npy(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend(bytes);
        read_mutated("a.npy", &b, read_npy)?;
    }

    #[test]
    fn mutated_png_files_are_read_or_refused(m in mutation(), sixteen in any::<bool>()) {
        let bytes = m.apply(&seed_png(sixteen));
        read_mutated("m.png", &bytes, read_png)?;
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_dicom_files_are_read_or_refused(m in mutation(), k in 0..4usize) {
        // One seed per syntax for every case.
        const SYNTAXES: [&str; 4] = ["uncompressed", "jpeg-lossless", "rle", "j2k"];
        static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let seeds = SEEDS.get_or_init(|| SYNTAXES.iter().map(|s| seed_dicom(s)).collect());
        let bytes = m.apply(&seeds[k]);
        read_mutated(&format!("m_{}.dcm", SYNTAXES[k]), &bytes, DicomSlice::read)?;
    }
}
