//! What the parity check found: each compared input's largest difference between ONNX
//! Runtime and Burn, apart from the check so that an export error can carry it.

use std::fmt;

/// One compared input.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityCase {
    /// `[N, 1, H, W]`.
    pub shape: [usize; 4],
    pub max_abs_error: f32,
    /// The largest output magnitude, to read the error against.
    pub max_abs_output: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParityReport {
    pub cases: Vec<ParityCase>,
}

impl ParityReport {
    pub fn max_abs_error(&self) -> f32 {
        self.cases.iter().fold(0.0, |m, c| m.max(c.max_abs_error))
    }
}

impl fmt::Display for ParityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            writeln!(
                f,
                "  input {:?}: max abs error {:.2e} (outputs up to {:.3})",
                c.shape, c.max_abs_error, c.max_abs_output
            )?;
        }
        Ok(())
    }
}
