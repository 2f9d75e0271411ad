//! Training of the dual-domain cross-contrast denoiser on Burn.
//!
//! Not implemented yet: the model, losses, skip strategies and training loop land here
//! (see DESIGN.md, "The model" and "The losses"). Preprocessing is never written again
//! here; it is imported from `crossdenoise-runtime` so training and serving agree.
