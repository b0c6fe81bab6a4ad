//! Pruners: one file per pruner behind the tiny [`Pruner`] trait, Optuna 5.0 semantics.
//! Each file holds the pruner and its spec (parameters, defaults, checks); [`spec`] is the
//! tagged enum `spec.pruner` parses into. The controller, the local runner and replay
//! decide through these names alike.

use std::collections::BTreeMap;

use super::{PrunerState, StudyView, TrialRecord};

pub mod hyperband;
pub mod index;
pub mod median;
pub mod none;
pub mod patient;
pub mod percentile;
pub mod spec;
pub mod successive_halving;
pub mod threshold;
pub mod wilcoxon;

pub use index::StudyIndex;
pub use spec::{PrunerSpec, SpecError, build};

/// The outcome of asking a pruner about one trial after a report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub prune: bool,
    /// Optuna's class name of the deciding pruner, e.g. `MedianPruner` (a Condition reason).
    pub reason: String,
    /// Human message naming the step, the value and the threshold.
    pub message: String,
    /// Rung values to record on the trial (successive halving), to persist before acting.
    pub record_rungs: BTreeMap<u32, f64>,
}

impl Decision {
    pub(crate) fn keep(reason: &str, message: impl Into<String>) -> Self {
        Decision {
            prune: false,
            reason: reason.to_string(),
            message: message.into(),
            record_rungs: BTreeMap::new(),
        }
    }

    pub(crate) fn prune(reason: &str, message: impl Into<String>) -> Self {
        Decision {
            prune: true,
            reason: reason.to_string(),
            message: message.into(),
            record_rungs: BTreeMap::new(),
        }
    }
}

/// Decides prune / keep for one trial given the study. `state` carries values resolved
/// once per study (persist it when it changes).
pub trait Pruner: Send + Sync {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
    ) -> Decision;

    /// As [`Pruner::prune`], with an optional incrementally maintained index of the
    /// study (completed values per step, recorded rung values) that lets a pruner skip
    /// rescanning every trial. The decision must equal `prune`'s; the default ignores it.
    fn prune_indexed(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
        index: Option<&StudyIndex>,
    ) -> Decision {
        let _ = index;
        self.prune(study, trial, state)
    }
}

/// Optuna's `_is_first_in_interval_step`: whether a check is due at `step` (the trial's
/// last step), postponing a missed pruning point to the next report.
pub(crate) fn is_first_in_interval_step(
    step: i64,
    trial: &TrialRecord,
    warmup: i64,
    interval: i64,
) -> bool {
    let nearest = (step - warmup).div_euclid(interval) * interval + warmup;
    // max(-1, largest reported step other than `step`), as Optuna's reduce.
    let second_last = match trial.intermediate.keys().next_back() {
        Some(&k) if k != step => k,
        _ => trial
            .intermediate
            .range(..step)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(-1),
    }
    .max(-1);
    second_last < nearest
}

/// numpy's `nanmin` / `nanmax` over values: NaN when every value is NaN (or none).
pub(crate) fn nan_best(values: impl Iterator<Item = f64>, maximize: bool) -> f64 {
    let mut best = f64::NAN;
    for v in values {
        if v.is_nan() {
            continue;
        }
        if best.is_nan() || (maximize && v > best) || (!maximize && v < best) {
            best = v;
        }
    }
    best
}
