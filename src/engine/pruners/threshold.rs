//! Optuna's `ThresholdPruner`: prune when the latest value leaves [lower, upper] or is NaN.

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, SpecError, at_least, invalid};
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
            return Decision::keep(R, message!("step {step} is within warm-up", step));
        }
        if !is_first_in_interval_step(step, trial, self.n_warmup_steps, self.interval_steps.max(1))
        {
            return Decision::keep(R, message!("step {step} is not a pruning step", step));
        }
        let v = trial.intermediate[&step];
        if v.is_nan() {
            return Decision::prune(R, message!("value at step {step} is NaN", step));
        }
        if v < self.lower {
            return Decision::prune(
                R,
                message!(
                    "value {v} at step {step} is below the lower bound {lower}",
                    v,
                    step,
                    lower = self.lower
                ),
            );
        }
        if v > self.upper {
            return Decision::prune(
                R,
                message!(
                    "value {v} at step {step} is above the upper bound {upper}",
                    v,
                    step,
                    upper = self.upper
                ),
            );
        }
        Decision::keep(
            R,
            message!(
                "value {v} at step {step} is within [{lower}, {upper}]",
                v,
                step,
                lower = self.lower,
                upper = self.upper
            ),
        )
    }
}

/// `threshold: {lower, upper, warmupSteps, intervalSteps}` (at least one bound).
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdSpec {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub warmup_steps: i64,
    pub interval_steps: i64,
}

impl PrunerParams for ThresholdSpec {
    const KEY: &str = "threshold";
    const NAME: &str = "ThresholdPruner";

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        f.only(&["lower", "upper", "warmupSteps", "intervalSteps"])?;
        Ok(ThresholdSpec {
            lower: f.opt_float("lower")?,
            upper: f.opt_float("upper")?,
            warmup_steps: f.int("warmupSteps", 0)?,
            interval_steps: f.int("intervalSteps", 1)?,
        })
    }

    fn to_value(&self) -> Value {
        json!({
            "lower": self.lower, "upper": self.upper, "warmupSteps": self.warmup_steps,
            "intervalSteps": self.interval_steps})
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        if self.lower.is_none() && self.upper.is_none() {
            return Err(invalid(p, "at least one of lower and upper must be set"));
        }
        if let (Some(l), Some(u)) = (self.lower, self.upper)
            && l > u
        {
            return Err(invalid(
                &format!("{p}.lower"),
                format!("must not be greater than upper ({u}), got {l}"),
            ));
        }
        at_least(p, "warmupSteps", self.warmup_steps, 0)?;
        at_least(p, "intervalSteps", self.interval_steps, 1)
    }

    fn build(&self) -> Box<dyn Pruner> {
        Box::new(ThresholdPruner {
            lower: self.lower.unwrap_or(f64::NEG_INFINITY),
            upper: self.upper.unwrap_or(f64::INFINITY),
            n_warmup_steps: self.warmup_steps,
            interval_steps: self.interval_steps,
        })
    }
}
