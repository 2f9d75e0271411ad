//! With the `tch` feature, LibTorch is a shared library from a Python wheel: this gives the
//! package's binaries (CLI, tests, benches) an rpath to the LibTorch they were linked
//! against, so they run without LD_LIBRARY_PATH, and refuses a LibTorch other than the one
//! `tch` is written for, naming the command that installs the right one (unless
//! LIBTORCH_BYPASS_VERSION_CHECK is set, as torch-sys allows). The root package's
//! own build script gives its binaries the same rpath.

const TORCH_VERSION: &str = "2.9.0";

fn main() {
    println!("cargo:rerun-if-changed={}", file!());
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // Set by torch-sys (`links = "tch"`) for packages that depend on it directly.
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let version_py = std::path::Path::new(&lib).join("../version.py");
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim_matches(['\'', '"', ' ']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    // torch-sys's own escape hatch, honoured here too: a GPU machine may carry another
    // PyTorch (the C++ API changes little between minor versions), at the user's risk.
    let bypass = std::env::var_os("LIBTORCH_BYPASS_VERSION_CHECK").is_some();
    println!("cargo:rerun-if-env-changed=LIBTORCH_BYPASS_VERSION_CHECK");
    if version.split('+').next() != Some(TORCH_VERSION) && bypass {
        println!(
            "cargo:warning=LibTorch at {lib} is PyTorch {version}, not {TORCH_VERSION}: \
             built anyway (LIBTORCH_BYPASS_VERSION_CHECK)"
        );
    } else if version.split('+').next() != Some(TORCH_VERSION) {
        panic!(
            "LibTorch at {lib} is PyTorch {version}; the tch backend needs PyTorch \
             {TORCH_VERSION}. Install it with `bash scripts/install-libtorch.sh` and build \
             through `scripts/with-libtorch.sh cargo build --release --features tch`"
        );
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
}
