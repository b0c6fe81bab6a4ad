//! Optuna's `MedianPruner`: the percentile pruner at the 50th percentile.

use super::percentile::PercentilePruner;

/// Builds Optuna's `MedianPruner` (`PercentilePruner(50.0, ...)`, reason `MedianPruner`).
pub fn median_pruner(
    n_startup_trials: u64,
    n_warmup_steps: i64,
    interval_steps: i64,
    n_min_trials: u64,
) -> PercentilePruner {
    let mut p = PercentilePruner::new(
        50.0,
        n_startup_trials,
        n_warmup_steps,
        interval_steps,
        n_min_trials,
    );
    p.reason = "MedianPruner";
    p
}
