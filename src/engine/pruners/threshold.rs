//! Optuna's `ThresholdPruner`: prune when the latest value leaves [lower, upper] or is NaN.

use super::{Decision, Pruner, is_first_in_interval_step};
use crate::engine::{PrunerState, StudyView, TrialRecord};

#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdPruner {
    /// `-inf` when absent.
    pub lower: f64,
    /// `+inf` when absent.
    pub upper: f64,
    pub n_warmup_steps: i64,
    pub interval_steps: i64,
}

impl Pruner for ThresholdPruner {
    fn prune(&self, _: &StudyView<'_>, trial: &TrialRecord, _: &mut PrunerState) -> Decision {
        const R: &str = "ThresholdPruner";
        let Some(step) = trial.last_step() else {
            return Decision::keep(R, "no intermediate value reported");
        };
        if step < self.n_warmup_steps {
            return Decision::keep(R, format!("step {step} is within warm-up"));
        }
        if !is_first_in_interval_step(step, trial, self.n_warmup_steps, self.interval_steps.max(1))
        {
            return Decision::keep(R, format!("step {step} is not a pruning step"));
        }
        let v = trial.intermediate[&step];
        if v.is_nan() {
            return Decision::prune(R, format!("value at step {step} is NaN"));
        }
        if v < self.lower {
            return Decision::prune(
                R,
                format!(
                    "value {v} at step {step} is below the lower bound {}",
                    self.lower
                ),
            );
        }
        if v > self.upper {
            return Decision::prune(
                R,
                format!(
                    "value {v} at step {step} is above the upper bound {}",
                    self.upper
                ),
            );
        }
        Decision::keep(
            R,
            format!(
                "value {v} at step {step} is within [{}, {}]",
                self.lower, self.upper
            ),
        )
    }
}
