//! Pruners: one file per pruner behind the tiny [`Pruner`] trait, Optuna 5.0 semantics.
//!
//! OWNER: pruners engineer (issue 2). Public names below are relied on by the controller,
//! the local runner and replay; keep them.

use std::collections::BTreeMap;

use super::{PrunerState, StudyView, TrialRecord};

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

/// Decides prune / keep for one trial given the study. `state` carries values resolved
/// once per study (persist it when it changes).
pub trait Pruner: Send + Sync {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
    ) -> Decision;
}
