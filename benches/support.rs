//! Shared by the benches: the exported model they time.

use std::path::{Path, PathBuf};

use crossdenoise_export::{encode, lower, path_metadata};
use crossdenoise_train::model::{Domain, DualDomain};

/// `model`'s PDFS -> PD no_skip path (C`channels`, depth `depth`), exported with the export
/// crate's own lowering into `dir`. The benches use random weights: they do not change speed.
pub fn export_model(model: &DualDomain, channels: usize, depth: usize, dir: &Path) -> PathBuf {
    let meta = path_metadata(
        &["pd".into(), "pdfs".into()],
        Domain::B,
        Domain::A,
        depth,
        channels,
    );
    let graph = lower::model_path(model, Domain::B, Domain::A);
    let bytes = encode(graph, &[lower::INPUT], &meta, &meta.to_props(), "bench").unwrap();
    let path = dir.join(format!("c{channels}d{depth}.onnx"));
    std::fs::write(&path, bytes).unwrap();
    path
}
