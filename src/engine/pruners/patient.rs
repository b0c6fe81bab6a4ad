//! Optuna's `PatientPruner`: prune (or ask the wrapped pruner) once the trial has not
//! improved by `min_delta` for `patience` steps.

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, PrunerSpec, SpecError, at_least, invalid};
use super::{Decision, Pruner, StudyIndex, nan_best};
use crate::engine::{Direction, PrunerState, StudyView, TrialRecord};

const R: &str = "PatientPruner";

pub struct PatientPruner {
    pub wrapped: Option<Box<dyn Pruner>>,
    pub patience: u64,
    pub min_delta: f64,
}

impl std::fmt::Debug for PatientPruner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientPruner")
            .field("wrapped", &self.wrapped.is_some())
            .field("patience", &self.patience)
            .field("min_delta", &self.min_delta)
            .finish()
    }
}

impl PatientPruner {
    /// `Some(message)` when the trial failed to improve within the patience.
    fn stalled(&self, study: &StudyView<'_>, trial: &TrialRecord) -> Result<String, String> {
        let Some(step) = trial.last_step() else {
            return Err("no intermediate value reported".into());
        };
        let n = trial.intermediate.len() as u64;
        if n <= self.patience.saturating_add(1) {
            return Err(format!(
                "only {n} steps reported, patience {}",
                self.patience
            ));
        }
        let split = (n - self.patience - 1) as usize;
        let before = trial.intermediate.values().take(split).copied();
        let after = trial.intermediate.values().skip(split).copied();
        let maximize = study.direction == Direction::Maximize;
        let b = nan_best(before, maximize);
        let a = nan_best(after, maximize);
        let failed = if maximize {
            b - self.min_delta > a
        } else {
            b + self.min_delta < a
        };
        if failed {
            Ok(format!(
                "no improvement over {b} by {} in the last {} steps up to step {step} (best {a})",
                self.min_delta,
                self.patience + 1
            ))
        } else {
            Err(format!("improved within the patience at step {step}"))
        }
    }

    fn wrap(&self, msg: String, inner: Option<Decision>) -> Decision {
        match inner {
            None => Decision::prune(R, msg),
            Some(d) => Decision {
                prune: d.prune,
                reason: if d.prune { d.reason } else { R.to_string() },
                message: format!("{msg}; wrapped pruner: {}", d.message),
                record_rungs: d.record_rungs,
            },
        }
    }
}

impl Pruner for PatientPruner {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
    ) -> Decision {
        match self.stalled(study, trial) {
            Err(msg) => Decision::keep(R, msg),
            Ok(msg) => {
                let inner = self.wrapped.as_ref().map(|w| w.prune(study, trial, state));
                self.wrap(msg, inner)
            }
        }
    }

    fn prune_indexed(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
        index: Option<&StudyIndex>,
    ) -> Decision {
        match self.stalled(study, trial) {
            Err(msg) => Decision::keep(R, msg),
            Ok(msg) => {
                let inner = self
                    .wrapped
                    .as_ref()
                    .map(|w| w.prune_indexed(study, trial, state, index));
                self.wrap(msg, inner)
            }
        }
    }
}

/// `patient: {patience, minDelta, wrapped}` (`wrapped`: another pruner spec).
#[derive(Clone, Debug, PartialEq)]
pub struct PatientSpec {
    pub patience: i64,
    pub min_delta: f64,
    pub wrapped: Option<Box<PrunerSpec>>,
}

impl PrunerParams for PatientSpec {
    const KEY: &str = "patient";
    const NAME: &str = R;

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        f.only(&["patience", "minDelta", "wrapped"])?;
        let patience = match f.get("patience") {
            None => {
                return Err(SpecError::Missing {
                    path: f.path.to_string(),
                    field: "patience".into(),
                });
            }
            Some(_) => f.int("patience", 0)?,
        };
        let wrapped = match f.get("wrapped") {
            None => None,
            Some(w) => Some(Box::new(PrunerSpec::from_value(w, &f.at("wrapped"))?)),
        };
        Ok(PatientSpec {
            patience,
            min_delta: f.float("minDelta", 0.0)?,
            wrapped,
        })
    }

    fn to_value(&self) -> Value {
        let mut m = json!({"patience": self.patience, "minDelta": self.min_delta});
        if let Some(w) = &self.wrapped {
            m["wrapped"] = w.to_value();
        }
        m
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        at_least(p, "patience", self.patience, 0)?;
        if self.min_delta < 0.0 {
            return Err(invalid(
                &format!("{p}.minDelta"),
                format!("must not be negative, got {}", self.min_delta),
            ));
        }
        match &self.wrapped {
            Some(w) => w.validate_at(&format!("{p}.wrapped")),
            None => Ok(()),
        }
    }

    fn build(&self) -> Box<dyn Pruner> {
        Box::new(PatientPruner {
            wrapped: self.wrapped.as_deref().map(PrunerSpec::build_unchecked),
            patience: self.patience.max(0) as u64,
            min_delta: self.min_delta,
        })
    }
}
