//! End-to-end tests of the `crossdenoise` binary across the crates, run as a user would:
//! the real executable in a fresh temporary folder.

mod configs;
mod daemon;
mod denoise;
mod dicom;
mod experiments;
mod export;
mod noise_levels;
mod phantoms;
#[path = "../runtime/tests/support/mod.rs"]
mod support;
mod util;
