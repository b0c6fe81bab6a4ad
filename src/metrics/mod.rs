//! Metric sources: trial logs through the API, Prometheus queries, and a push endpoint.
//!
//! - [`spec`]: `spec.metrics` of a Study ([`MetricsSpec`]).
//! - [`parser`]: the log-line parser shared with `lopper run`.

pub mod parser;
pub mod spec;

pub use parser::{LineBuffer, LineParser, RawObservation, SpecError};
pub use spec::{
    LogFormat, LogsSpec, MetricsSpec, PrometheusAuth, PrometheusSpec, PushSpec, SecretRef,
};
