//! The scanner-side daemon: receives images over the MRD (ISMRMRD) streaming protocol,
//! denoises them through `crossdenoise-runtime` and sends them back, never losing one.
//!
//! Not implemented yet. It will never link Burn.
