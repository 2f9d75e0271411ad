//! File formats on real files: numpy-written `.npy` fixtures, round trips through disk,
//! paired folders, and the errors a user sees for bad input.

use std::fs;
use std::path::{Path, PathBuf};

use crossdenoise_image::Error;
use crossdenoise_image::io::{
    GrayImage, PairedFolder, read_npy, read_png, read_slice, write_npy, write_png,
};
use ndarray::Array2;

fn npy_fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("tests/fixtures/npy")
        .join(name)
}

fn expected_base() -> Array2<f32> {
    Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 * 1.5)
}

#[test]
fn reads_numpy_written_float_and_uint16_arrays() {
    for name in [
        "f32.npy",
        "f64.npy",
        "f32_fortran.npy",
        "f32_big_endian.npy",
    ] {
        assert_eq!(
            read_npy(&npy_fixture(name)).unwrap(),
            expected_base(),
            "{name}"
        );
    }
    assert_eq!(
        read_npy(&npy_fixture("u16.npy")).unwrap(),
        expected_base().mapv(|v| v * 1000.0)
    );
}

#[test]
fn refuses_complex_3d_and_other_dtypes_naming_the_file() {
    let err = read_npy(&npy_fixture("c64.npy")).unwrap_err();
    assert!(matches!(err, Error::NpyDtype { .. }), "{err}");
    assert!(
        err.to_string().contains("c64.npy") && err.to_string().contains("c8"),
        "{err}"
    );

    let err = read_npy(&npy_fixture("i32.npy")).unwrap_err();
    assert!(
        err.to_string().contains("i32.npy") && err.to_string().contains("i4"),
        "{err}"
    );

    let err = read_npy(&npy_fixture("f32_3d.npy")).unwrap_err();
    assert!(matches!(err, Error::NotTwoD { ndim: 3, .. }), "{err}");
    assert!(err.to_string().contains("f32_3d.npy"), "{err}");
}

#[test]
fn npy_headers_that_promise_more_than_the_file_holds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npy = |name: &str, dict: &str, data: usize| {
        let mut header = dict.to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        b.extend(vec![0u8; data]);
        let p = dir.path().join(name);
        fs::write(&p, b).unwrap();
        p
    };
    let huge = npy(
        "huge.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }",
        48,
    );
    let e = read_npy(&huge).unwrap_err().to_string();
    assert!(
        e.contains("huge.npy") && e.contains("(100000, 100000)") && e.contains("40000000000"),
        "{e}"
    );
    let overflow = npy(
        "overflow.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 4), }",
        48,
    );
    assert!(read_npy(&overflow).is_err());
    // The same header with its data is read.
    let fits = npy(
        "fits.npy",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
        48,
    );
    assert_eq!(read_npy(&fits).unwrap().dim(), (3, 4));
}

#[test]
fn npy_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let img = Array2::from_shape_fn((7, 5), |(i, j)| {
        f32::from_bits(0x3f80_0000 + (i * 977 + j * 131) as u32) - 0.3
    });
    write_npy(&path, img.view()).unwrap();
    let back = read_npy(&path).unwrap();
    assert!(
        img.iter()
            .zip(back.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn png_round_trips_are_bit_exact_at_8_and_16_bits() {
    let dir = tempfile::tempdir().unwrap();
    let p8 = dir.path().join("a.png");
    let img8 = GrayImage::U8(Array2::from_shape_fn((9, 13), |(i, j)| {
        ((i * 31 + j * 7) % 256) as u8
    }));
    write_png(&p8, &img8).unwrap();
    assert_eq!(read_png(&p8).unwrap(), img8);

    let p16 = dir.path().join("b.png");
    let img16 = GrayImage::U16(Array2::from_shape_fn((9, 13), |(i, j)| {
        (i * 7001 + j * 4099) as u16
    }));
    write_png(&p16, &img16).unwrap();
    assert_eq!(read_png(&p16).unwrap(), img16);
    assert_eq!(read_slice(&p16).unwrap(), img16.to_f32());
}

#[test]
fn truncated_and_colour_pngs_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    write_png(&good, &GrayImage::U16(Array2::from_elem((32, 32), 1234))).unwrap();
    let bytes = fs::read(&good).unwrap();
    let cut = dir.path().join("cut.png");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_png(&cut).unwrap_err();
    assert!(matches!(err, Error::Png { .. }), "{err}");
    assert!(err.to_string().contains("cut.png"), "{err}");

    let rgb = dir.path().join("rgb.png");
    let mut enc = png::Encoder::new(fs::File::create(&rgb).unwrap(), 2, 2);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(&[0u8; 12])
        .unwrap();
    let err = read_png(&rgb).unwrap_err();
    assert!(
        err.to_string().contains("rgb.png") && err.to_string().contains("Rgb"),
        "{err}"
    );

    let other = dir.path().join("scan.jpg");
    fs::write(&other, b"x").unwrap();
    assert!(matches!(
        read_slice(&other).unwrap_err(),
        Error::Extension { .. }
    ));
}

fn touch_npy(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_npy(path, Array2::<f32>::zeros((4, 4)).view()).unwrap();
}

#[test]
fn paired_folders_match_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["b.npy", "a.npy", "c.npy"] {
        touch_npy(&dir.path().join("pd").join(n));
        touch_npy(&dir.path().join("pdfs").join(n));
    }
    fs::write(dir.path().join("pd").join("notes.txt"), "ignored").unwrap();
    let set = PairedFolder::open(dir.path()).unwrap();
    let names: Vec<_> = set.pairs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a.npy", "b.npy", "c.npy"]);
    let (a, b) = set.load(1).unwrap();
    assert_eq!(a.dim(), b.dim());
}

#[test]
fn paired_folder_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    let err = PairedFolder::open(&root.join("nowhere")).unwrap_err();
    assert!(
        err.to_string().contains("nowhere") && err.to_string().contains("does not exist"),
        "{err}"
    );

    fs::create_dir_all(root.join("pd")).unwrap();
    let err = PairedFolder::open(root).unwrap_err();
    assert!(
        err.to_string().contains("pdfs") && err.to_string().contains("does not exist"),
        "{err}"
    );

    fs::create_dir_all(root.join("pdfs")).unwrap();
    let err = PairedFolder::open(root).unwrap_err();
    assert!(err.to_string().contains("no .npy or .png images"), "{err}");

    touch_npy(&root.join("pd/0001.npy"));
    touch_npy(&root.join("pd/0002.npy"));
    touch_npy(&root.join("pdfs/0001.npy"));
    touch_npy(&root.join("pdfs/0003.npy"));
    let err = PairedFolder::open(root).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("only in pd/: [0002.npy]") && msg.contains("only in pdfs/: [0003.npy]"),
        "{msg}"
    );

    // A pair of two different sizes is reported on load.
    fs::remove_file(root.join("pd/0002.npy")).unwrap();
    fs::remove_file(root.join("pdfs/0003.npy")).unwrap();
    write_npy(
        &root.join("pdfs/0001.npy"),
        Array2::<f32>::zeros((4, 5)).view(),
    )
    .unwrap();
    let err = PairedFolder::open(root).unwrap().load(0).unwrap_err();
    assert!(err.to_string().contains("pdfs/0001.npy"), "{err}");
}
