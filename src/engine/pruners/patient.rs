//! Optuna's `PatientPruner`: prune (or ask the wrapped pruner) once the trial has not
//! improved by `min_delta` for `patience` steps.

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, PrunerSpec, SpecError, at_least, invalid};
use super::{Decision, Message, Pruner, StudyIndex, nan_better};
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
    /// Whether the trial failed to improve within the patience, and the message saying so
    /// (or why not).
    fn stalled(&self, study: &StudyView<'_>, trial: &TrialRecord) -> (bool, Message) {
        let Some(step) = trial.last_step() else {
            return (false, "no intermediate value reported".into());
        };
        let n = trial.intermediate.len() as u64;
        if n <= self.patience.saturating_add(1) {
            let why = message!(
                "only {n} steps reported, patience {patience}",
                n,
                patience = self.patience
            );
            return (false, why);
        }
        let split = (n - self.patience - 1) as usize;
        let maximize = study.direction == Direction::Maximize;
        // The best before the last `patience + 1` values and the best of those, in one pass
        // (this runs at every report).
        let (mut b, mut a) = (f64::NAN, f64::NAN);
        for (i, &v) in trial.intermediate.values().enumerate() {
            if i < split {
                b = nan_better(b, v, maximize);
            } else {
                a = nan_better(a, v, maximize);
            }
        }
        let failed = if maximize {
            b - self.min_delta > a
        } else {
            b + self.min_delta < a
        };
        let why = if failed {
            message!(
                "no improvement over {b} by {delta} in the last {steps} steps up to step {step} (best {a})",
                b,
                delta = self.min_delta,
                steps = self.patience + 1,
                step,
                a
            )
        } else {
            message!("improved within the patience at step {step}", step)
        };
        (failed, why)
    }

    fn wrap(&self, msg: Message, inner: Option<Decision>) -> Decision {
        match inner {
            None => Decision::prune(R, msg),
            Some(d) => Decision {
                prune: d.prune,
                reason: if d.prune { d.reason } else { R },
                message: Message::joined(msg, "; wrapped pruner: ", d.message),
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
        let (stalled, msg) = self.stalled(study, trial);
        if !stalled {
            return Decision::keep(R, msg);
        }
        let inner = self.wrapped.as_ref().map(|w| w.prune(study, trial, state));
        self.wrap(msg, inner)
    }

    fn prune_indexed(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
        index: Option<&StudyIndex>,
    ) -> Decision {
        let (stalled, msg) = self.stalled(study, trial);
        if !stalled {
            return Decision::keep(R, msg);
        }
        let inner = self
            .wrapped
            .as_ref()
            .map(|w| w.prune_indexed(study, trial, state, index));
        self.wrap(msg, inner)
    }

    fn uses_index(&self) -> bool {
        self.wrapped.as_ref().is_some_and(|w| w.uses_index())
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
