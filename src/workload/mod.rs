//! What the operator and `lopper run` share about a trial's workload: the spec's checks
//! ([`spec`]) and rendering a trial's Job from the template ([`job`]), with the metrics
//! sidecar of `file` and `tensorboard` studies ([`sidecar`]). No I/O.

pub mod job;
pub mod sidecar;
pub mod spec;
