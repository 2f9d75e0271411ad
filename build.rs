//! With the `tch` feature, the CLI's binaries, tests and benches get an rpath to the
//! LibTorch they were linked against, so they run without LD_LIBRARY_PATH. Which LibTorch
//! may be linked is the training crate's build script's check, which runs before this one.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // Set by torch-sys (`links = "tch"`) for packages that depend on it directly.
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
