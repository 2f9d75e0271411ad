//! Pairing a folder's inputs with their guides for the guided denoiser: by name, with every
//! problem listed at once.

use crossdenoise_image::io::write_npy;
use crossdenoise_runtime::denoise_files::{collect_inputs, pair_guides};

#[test]
fn guides_pair_by_name_and_every_problem_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (pd, pdfs) = (dir.path().join("pd"), dir.path().join("pdfs"));
    std::fs::create_dir_all(&pd).unwrap();
    std::fs::create_dir_all(&pdfs).unwrap();
    let img = |h, w| ndarray::Array2::<f32>::ones((h, w));
    for name in ["a.npy", "b.npy", "c.npy"] {
        write_npy(&pd.join(name), img(8, 8).view()).unwrap();
    }
    write_npy(&pdfs.join("a.npy"), img(8, 8).view()).unwrap();
    write_npy(&pdfs.join("b.npy"), img(8, 6).view()).unwrap();
    let inputs = collect_inputs(std::slice::from_ref(&pd)).unwrap();
    let e = pair_guides(
        &inputs,
        &collect_inputs(std::slice::from_ref(&pdfs)).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("2 input(s) have no usable guide; nothing was written"),
        "{e}"
    );
    assert!(e.contains("b.npy: 8x8, but its guide"), "{e}");
    assert!(e.contains("is 8x6"), "{e}");
    assert!(e.contains("c.npy: no guide named c.npy"), "{e}");
    write_npy(&pdfs.join("b.npy"), img(8, 8).view()).unwrap();
    write_npy(&pdfs.join("c.npy"), img(8, 8).view()).unwrap();
    let paired = pair_guides(
        &inputs,
        &collect_inputs(std::slice::from_ref(&pdfs)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        paired,
        vec![pdfs.join("a.npy"), pdfs.join("b.npy"), pdfs.join("c.npy")]
    );
}
