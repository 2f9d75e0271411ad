//! Export of a trained model's no_skip cross path (E_from -> z -> D_to) as a standalone
//! ONNX graph, parity-checked against ONNX Runtime.
//!
//! Not implemented yet.
