//! Operator telemetry in `prometheus::default_registry()` (served on `/metrics`).

use std::sync::OnceLock;

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, default_registry,
};

/// The operator's own metrics.
pub struct Telemetry {
    /// `lopper_reconciles_total{controller}`.
    pub reconciles: IntCounterVec,
    /// `lopper_reconcile_errors_total{controller}`.
    pub reconcile_errors: IntCounterVec,
    /// `lopper_reconcile_duration_seconds{controller}`.
    pub reconcile_duration: HistogramVec,
    /// `lopper_trials{namespace,study,phase}`.
    pub trials: IntGaugeVec,
    /// `lopper_prune_decisions_total{pruner,decision}` (decision = prune | keep).
    pub prune_decisions: IntCounterVec,
    /// `lopper_gpu_seconds_used{namespace,study}`.
    pub gpu_seconds_used: GaugeVec,
    /// `lopper_gpu_seconds_saved{namespace,study}` (estimated, by pruning).
    pub gpu_seconds_saved: GaugeVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(c: T) -> T {
    // A second registration (tests creating several controllers) is harmless.
    let _ = default_registry().register(Box::new(c.clone()));
    c
}

/// The process-wide telemetry, registered on first use.
pub fn telemetry() -> &'static Telemetry {
    static T: OnceLock<Telemetry> = OnceLock::new();
    T.get_or_init(|| Telemetry {
        reconciles: register(
            IntCounterVec::new(
                Opts::new("lopper_reconciles_total", "Reconciles run, by controller."),
                &["controller"],
            )
            .expect("metric"),
        ),
        reconcile_errors: register(
            IntCounterVec::new(
                Opts::new(
                    "lopper_reconcile_errors_total",
                    "Reconciles that failed, by controller.",
                ),
                &["controller"],
            )
            .expect("metric"),
        ),
        reconcile_duration: register(
            HistogramVec::new(
                HistogramOpts::new(
                    "lopper_reconcile_duration_seconds",
                    "Reconcile durations, by controller.",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["controller"],
            )
            .expect("metric"),
        ),
        trials: register(
            IntGaugeVec::new(
                Opts::new("lopper_trials", "Trials by study and phase."),
                &["namespace", "study", "phase"],
            )
            .expect("metric"),
        ),
        prune_decisions: register(
            IntCounterVec::new(
                Opts::new(
                    "lopper_prune_decisions_total",
                    "Pruner decisions, by pruner and decision (prune | keep).",
                ),
                &["pruner", "decision"],
            )
            .expect("metric"),
        ),
        gpu_seconds_used: register(
            GaugeVec::new(
                Opts::new(
                    "lopper_gpu_seconds_used",
                    "GPU-seconds used by a study's trials.",
                ),
                &["namespace", "study"],
            )
            .expect("metric"),
        ),
        gpu_seconds_saved: register(
            GaugeVec::new(
                Opts::new(
                    "lopper_gpu_seconds_saved",
                    "Estimated GPU-seconds saved by pruning, per study.",
                ),
                &["namespace", "study"],
            )
            .expect("metric"),
        ),
    })
}

/// Removes a study's per-study series (the study is gone).
pub fn forget_study(namespace: &str, study: &str) {
    let t = telemetry();
    for p in crate::crd::TrialPhase::ALL {
        let _ = t
            .trials
            .remove_label_values(&[namespace, study, p.as_str()]);
    }
    let _ = t.gpu_seconds_used.remove_label_values(&[namespace, study]);
    let _ = t.gpu_seconds_saved.remove_label_values(&[namespace, study]);
}
