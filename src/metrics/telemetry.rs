//! Telemetry of the metric sources in `prometheus::default_registry()`.

use std::sync::OnceLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, default_registry};

/// Metrics of the metric sources.
pub struct SourceTelemetry {
    /// `lopper_metric_observations_total{source}`: points handed to `observe` (recorded or not).
    pub observations: IntCounterVec,
    /// `lopper_metric_errors_total{source,kind}`: log-stream breaks, query errors, rejected reports.
    pub errors: IntCounterVec,
    /// `lopper_report_duration_seconds{code}`: push report latency, by HTTP status.
    pub report_duration: HistogramVec,
    /// `lopper_prometheus_query_duration_seconds`: PromQL query latency.
    pub query_duration: HistogramVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(c: T) -> T {
    let _ = default_registry().register(Box::new(c.clone()));
    c
}

/// The process-wide metric-source telemetry, registered on first use.
pub fn telemetry() -> &'static SourceTelemetry {
    static T: OnceLock<SourceTelemetry> = OnceLock::new();
    T.get_or_init(|| SourceTelemetry {
        observations: register(
            IntCounterVec::new(
                Opts::new(
                    "lopper_metric_observations_total",
                    "Intermediate metric points received, by source (logs, prometheus, push).",
                ),
                &["source"],
            )
            .expect("metric"),
        ),
        errors: register(
            IntCounterVec::new(
                Opts::new(
                    "lopper_metric_errors_total",
                    "Metric source errors (stream breaks, query errors, rejected reports), by source and kind.",
                ),
                &["source", "kind"],
            )
            .expect("metric"),
        ),
        report_duration: register(
            HistogramVec::new(
                HistogramOpts::new(
                    "lopper_report_duration_seconds",
                    "Latency of push reports, by HTTP status code.",
                )
                .buckets(vec![
                    0.002, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["code"],
            )
            .expect("metric"),
        ),
        query_duration: register(
            HistogramVec::new(
                HistogramOpts::new(
                    "lopper_prometheus_query_duration_seconds",
                    "Latency of PromQL instant queries, by outcome (ok, error).",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["outcome"],
            )
            .expect("metric"),
        ),
    })
}

/// Counts `n` observations from `source`.
pub fn observed(source: &str, n: usize) {
    telemetry()
        .observations
        .with_label_values(&[source])
        .inc_by(n as u64);
}

/// Counts one error of `kind` in `source`.
pub fn error(source: &str, kind: &str) {
    telemetry().errors.with_label_values(&[source, kind]).inc();
}
