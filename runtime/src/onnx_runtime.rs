//! Finding and loading the ONNX Runtime shared library.
//!
//! ONNX Runtime is not linked at build time: `ort` opens `libonnxruntime.so` when the first
//! model is opened, so the same binary runs on the CPU build of the library on a workstation
//! and on the CUDA / TensorRT build next to the scanner. The library comes out of the PyPI
//! wheels (`scripts/install-ort.sh`), never from a download at run time, and a missing
//! library is an error that says how to install it instead of `ort`'s panic.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The environment variable that names the library file (or the folder holding it).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The command that installs the CPU build, quoted in the "not found" error.
pub const INSTALL_HINT: &str = "bash scripts/install-ort.sh (CPU) or bash scripts/install-ort.sh --gpu (CUDA + TensorRT), \
     or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.24 or newer";

const LIB_NAME: &str = "libonnxruntime.so";

/// A loaded ONNX Runtime: the library and one environment shared by every session.
#[derive(Clone)]
pub struct OnnxRuntime {
    env: std::result::Result<ort::environment::Environment, String>,
    library: PathBuf,
}

impl std::fmt::Debug for OnnxRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRuntime")
            .field("library", &self.library)
            .finish()
    }
}

/// ONNX Runtime allows one environment per process, and `ort` never lets a second one be
/// built even after the first is dropped; so the first successful load is kept here and
/// shared. This is the crate's only process-wide state, and it mirrors the library's own.
static LOADED: std::sync::OnceLock<OnnxRuntime> = std::sync::OnceLock::new();

impl OnnxRuntime {
    /// Loads the library found by [`find_library`], or returns the runtime this process
    /// already loaded.
    pub fn load() -> Result<Self> {
        if let Some(rt) = LOADED.get() {
            return Ok(rt.clone());
        }
        let library = find_library()?;
        Self::load_from(&library)
    }

    /// Loads a given library file. The first library loaded stays for the life of the
    /// process; a later call naming another file gets that first one (see [`library`]).
    ///
    /// [`library`]: OnnxRuntime::library
    pub fn load_from(library: &Path) -> Result<Self> {
        if let Some(rt) = LOADED.get() {
            return Ok(rt.clone());
        }
        let load_err = |reason: String| Error::OrtLoad {
            path: library.into(),
            reason,
        };
        let builder = ort::init_from(library).map_err(|e| load_err(e.to_string()))?;
        let rt = LOADED.get_or_init(|| {
            let env = builder
                .with_name("crossdenoise")
                .with_telemetry(false)
                .build();
            OnnxRuntime {
                env: env.map_err(|e| e.to_string()),
                library: library.into(),
            }
        });
        match &rt.env {
            Ok(_) => Ok(rt.clone()),
            Err(e) => Err(load_err(e.clone())),
        }
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    pub(crate) fn env(&self) -> &ort::environment::Environment {
        self.env
            .as_ref()
            .expect("only a runtime whose environment was built is handed out")
    }
}

/// The places searched for the library, in order: `$ORT_DYLIB_PATH` (a file, or a folder
/// holding `libonnxruntime.so`), then the project's `.ort/gpu/` and `.ort/cpu/` (the GPU
/// build also runs on the CPU) — the project that cargo runs this from (its
/// `CARGO_MANIFEST_DIR` at run time, for tests and `cargo run`), then the one this crate was
/// compiled in — then `onnxruntime/` beside the executable, for an installed copy of the
/// daemon. The run-time project comes first because one build folder may serve several
/// checkouts.
pub fn search_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = std::env::var_os(DYLIB_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        paths.push(if p.is_dir() { p.join(LIB_NAME) } else { p });
    }
    let running = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|dir| {
            dir.ancestors()
                .find(|d| d.join(".ort").is_dir())
                .map(Path::to_path_buf)
        });
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for project in running.iter().chain([&compiled]) {
        let ort = project.join(".ort");
        paths.push(ort.join("gpu").join(LIB_NAME));
        paths.push(ort.join("cpu").join(LIB_NAME));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        paths.push(dir.join("onnxruntime").join(LIB_NAME));
    }
    paths
}

/// The first existing library of [`search_paths`]. An `ORT_DYLIB_PATH` that names a missing
/// file is an error of its own rather than silently skipped: the user asked for that file.
pub fn find_library() -> Result<PathBuf> {
    let paths = search_paths();
    if let Some(p) = std::env::var_os(DYLIB_ENV).filter(|p| !p.is_empty())
        && !paths[0].exists()
    {
        return Err(Error::OrtLoad {
            path: PathBuf::from(p),
            reason: format!(
                "{DYLIB_ENV} names a file that does not exist; install with {INSTALL_HINT}"
            ),
        });
    }
    paths
        .iter()
        .find(|p| p.exists())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .ok_or(Error::OrtMissing { searched: paths })
}
