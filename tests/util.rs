//! Running the real binary.

use std::path::Path;
use std::process::{Command, Output};

pub fn crossdenoise(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossdenoise"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the crossdenoise binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
