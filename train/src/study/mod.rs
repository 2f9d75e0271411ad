//! The original study: the dual-domain cross-contrast network's training task, its four
//! losses, validation and curves, the experiment workflow (criteria, diagnosis, suites,
//! reports) and the training-step benchmark.
//!
//! The product (`crate::denoiser`) never imports it; it may import the product (the bench
//! times both networks' steps).

pub mod bench;
pub mod curves;
pub mod experiment;
pub mod loss;
pub mod records;
pub mod training;
pub mod validation;

pub use records::{LossSums, MetricLine, PathScore, Validation};
pub use training::{DualDomainTask, StudyFinals, StudySummary, StudySums, model_config, train};
