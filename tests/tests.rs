//! End-to-end tests of the `crossdenoise` binary across the crates, run as a user would:
//! the real executable in a fresh temporary folder.

#[cfg(feature = "mpi")]
mod cluster;
mod configs;
mod daemon;
mod denoise;
mod deploy;
mod dicom;
mod experiments;
mod export;
mod fastmri;
mod noise_levels;
mod phantoms;
mod series_noise;
use crossdenoise_test_support as support;
mod util;
