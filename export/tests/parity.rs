//! The parity gate itself: a graph that does not reproduce the Burn model it is checked
//! against is never written, and one that does is, in fp32 and in fp16.

use burn::prelude::*;
use crossdenoise_export::{
    ExportError, FP16_PARITY_TOLERANCE, PARITY_TOLERANCE, encode, graph, lower, parity,
    path_metadata, write_checked,
};
use crossdenoise_train::model::{Domain, DualDomainConfig};

fn bytes(g: graph::GraphBuilder, depth: usize) -> Vec<u8> {
    let meta = path_metadata(
        &["pd".into(), "pdfs".into()],
        Domain::B,
        Domain::A,
        depth,
        4,
    );
    encode(g, &[lower::INPUT], &meta, &meta.to_props(), "test").unwrap()
}

#[test]
fn a_graph_that_differs_from_burn_is_not_written() {
    let device = Device::flex();
    let depth = 2;
    let exported = DualDomainConfig::new(4, depth).init(&device);
    let other = DualDomainConfig::new(4, depth).init(&device);
    let model = bytes(lower::model_path(&exported, Domain::B, Domain::A), depth);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");

    let e = write_checked(&model, &out, PARITY_TOLERANCE, |f| {
        parity::check(&other, Domain::B, Domain::A, f, depth).map(Some)
    })
    .unwrap_err();
    assert!(matches!(e, ExportError::Parity { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("nothing was written") && text.contains("input [2, 1, 64, 64]"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file, no temporary"
    );

    let report = write_checked(&model, &out, PARITY_TOLERANCE, |f| {
        parity::check(&exported, Domain::B, Domain::A, f, depth).map(Some)
    })
    .unwrap()
    .unwrap();
    assert!(report.max_abs_error() <= PARITY_TOLERANCE);
    assert_eq!(report.cases.len(), 3);
    assert!(out.is_file());
}

#[test]
fn fp16_graph_stays_within_its_bound_and_casts_at_the_edges() {
    let device = Device::flex();
    let depth = 2;
    let m = DualDomainConfig::new(4, depth).init(&device);
    let g =
        lower::model_path(&m, Domain::B, Domain::A).into_fp16(&[lower::INPUT], &[lower::OUTPUT]);
    assert_eq!(g.op_counts()["Cast"], 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m16.onnx");
    let report = write_checked(&bytes(g, depth), &out, FP16_PARITY_TOLERANCE, |f| {
        parity::check(&m, Domain::B, Domain::A, f, depth).map(Some)
    })
    .unwrap()
    .unwrap();
    let err = report.max_abs_error();
    assert!(
        err > 0.0 && err <= FP16_PARITY_TOLERANCE,
        "fp16 error {err}"
    );
}
