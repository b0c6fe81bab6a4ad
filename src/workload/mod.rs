//! What the operator and `lopper run` share about a trial's workload: the spec's checks
//! ([`spec`]) and rendering a trial's Job from the template ([`job`]), with the metrics
//! sidecar of `file` and `tensorboard` studies ([`sidecar`]); a JobSet ([`jobset`]) or a
//! Kubeflow TrainJob ([`trainjob`]) for multi-node trials ([`kinds`]), and what Kueue needs
//! ([`kueue`]). No I/O.

pub mod job;
pub mod jobset;
pub mod kinds;
pub mod kueue;
pub mod sidecar;
pub mod spec;
pub mod trainjob;
