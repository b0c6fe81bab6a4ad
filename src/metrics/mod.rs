//! Metric sources: trial logs through the API, Prometheus queries, a push endpoint, and the
//! parsers of the metrics files (`file`) and TensorBoard event files (`tensorboard`) that the
//! sidecar (`crate::sidecar`) follows.
//!
//! - [`spec`]: `spec.metrics` of a Study ([`MetricsSpec`]).
//! - [`parser`]: the log-line parser shared with `lopper run`.
//! - [`push`]: the push endpoint (a router over a [`push::ReportSink`]).
//! - [`server`]: `/metrics`, `/healthz`, `/readyz` plus extra routes.
//! - [`telemetry`]: observations per source, errors, report latency.

pub mod file;
pub mod logs;
pub mod operator;
pub mod parser;
pub mod prometheus;
pub mod push;
pub mod server;
pub mod spec;
pub mod telemetry;
pub mod tensorboard;

pub use parser::{LineBuffer, LineParser, RawObservation, SpecError};
pub use spec::{
    FileFormat, FileSpec, LogFormat, LogsSpec, MetricsSpec, PrometheusAuth, PrometheusSpec,
    PushSpec, SecretRef, TensorboardSpec,
};
