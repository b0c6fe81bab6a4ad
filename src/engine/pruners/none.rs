//! Optuna's `NopPruner`: never prunes.

use super::{Decision, Pruner};
use crate::engine::{PrunerState, StudyView, TrialRecord};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NopPruner;

impl Pruner for NopPruner {
    fn prune(&self, _: &StudyView<'_>, _: &TrialRecord, _: &mut PrunerState) -> Decision {
        Decision::keep("NopPruner", "pruning is disabled")
    }
}
