//! Optuna's `SuccessiveHalvingPruner` (asynchronous successive halving).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, Resource, SpecError, at_least, invalid};
use super::{Decision, Message, Pruner, StudyIndex};
use crate::engine::{Direction, PrunerState, StudyView, TrialRecord, TrialState};

const R: &str = "SuccessiveHalvingPruner";

#[derive(Clone, Debug, PartialEq)]
pub struct SuccessiveHalvingPruner {
    /// `None` = `auto`: resolved once from the completed trials (kept in `PrunerState`).
    pub min_resource: Option<i64>,
    pub reduction_factor: i64,
    pub min_early_stopping_rate: i64,
    pub bootstrap_count: u64,
}

/// `base * eta^exp`, `None` when it overflows (then no step can reach it).
fn promotion_step(base: i64, eta: i64, exp: i64) -> Option<i64> {
    let e = u32::try_from(exp).ok()?;
    eta.checked_pow(e)?.checked_mul(base)
}

/// Optuna's `_estimate_min_resource`.
fn estimate_min_resource<'a>(trials: impl Iterator<Item = &'a TrialRecord>) -> Option<i64> {
    let last = trials
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| t.last_step())
        .max()?;
    Some((last.div_euclid(100)).max(1))
}

/// Whether `value` is within the top `max(n // eta, 1)` of the competing values
/// (`others` plus `value` itself), ties promoted. `count_less`/`count_greater` count the
/// other values strictly better / worse than `value` for the direction.
pub(crate) fn promotable(n: usize, eta: i64, better_count: usize) -> bool {
    let idx = (n as i64 / eta - 1).max(0) as usize;
    better_count <= idx
}

/// Where a successive halving decision gets the other trials' rung values.
pub(crate) enum Competitors<'a> {
    /// Scan the study's trials, keeping those for which the filter holds.
    Scan(&'a dyn Fn(&TrialRecord) -> bool),
    /// Use an index of all trials' recorded rungs.
    Index(&'a StudyIndex),
}

impl SuccessiveHalvingPruner {
    pub(crate) fn decide(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
        competitors: Competitors<'_>,
        reason: &'static str,
    ) -> Decision {
        let mut record = BTreeMap::new();
        let done = |prune: bool, message: Message, record: BTreeMap<u32, f64>| Decision {
            prune,
            reason,
            message,
            record_rungs: record,
        };
        let Some(step) = trial.last_step() else {
            return done(false, "no intermediate value reported".into(), record);
        };
        let mut rung: u32 = 0;
        while trial.rungs.contains_key(&rung) {
            rung += 1;
        }
        let value = trial.intermediate[&step];
        let maximize = study.direction == Direction::Maximize;
        loop {
            let min_resource = match self.min_resource.or(state.min_resource) {
                Some(m) => m,
                None => {
                    let est = match &competitors {
                        Competitors::Index(ix) => {
                            ix.max_complete_last_step.map(|l| l.div_euclid(100).max(1))
                        }
                        Competitors::Scan(_) => estimate_min_resource(study.trials.iter()),
                    };
                    match est {
                        Some(m) => {
                            state.min_resource = Some(m);
                            m
                        }
                        None => {
                            return done(
                                false,
                                "min resource not yet known (no completed trial)".into(),
                                record,
                            );
                        }
                    }
                }
            };
            let Some(promotion) = promotion_step(
                min_resource,
                self.reduction_factor,
                self.min_early_stopping_rate + rung as i64,
            ) else {
                return done(false, message!("rung {rung} is out of reach", rung), record);
            };
            if step < promotion {
                return done(
                    false,
                    message!(
                        "step {step} has not reached rung {rung} (step {promotion})",
                        step,
                        rung,
                        promotion
                    ),
                    record,
                );
            }
            if value.is_nan() {
                return done(true, message!("value at step {step} is NaN", step), record);
            }
            record.insert(rung, value);
            let (others, better) = match &competitors {
                Competitors::Index(ix) => match ix.rungs.get(&rung) {
                    Some(sv) => {
                        let better = if maximize {
                            sv.sorted.len() - sv.sorted.partition_point(|&x| x <= value)
                        } else {
                            sv.sorted.partition_point(|&x| x < value)
                        };
                        (sv.sorted.len(), better)
                    }
                    None => (0, 0),
                },
                Competitors::Scan(keep) => {
                    let mut n = 0;
                    let mut better = 0;
                    for t in study.trials.iter().filter(|t| keep(t)) {
                        if let Some(&v) = t.rungs.get(&rung) {
                            n += 1;
                            if (maximize && v > value) || (!maximize && v < value) {
                                better += 1;
                            }
                        }
                    }
                    (n, better)
                }
            };
            let n = others + 1;
            if n as u64 <= self.bootstrap_count {
                return done(
                    true,
                    message!(
                        "rung {rung} has {n} values, not more than the bootstrap count {bootstrap}",
                        rung,
                        n,
                        bootstrap = self.bootstrap_count
                    ),
                    record,
                );
            }
            if !promotable(n, self.reduction_factor, better) {
                return done(
                    true,
                    message!(
                        "value {value} at step {step} is not in the top 1/{eta} of {n} trials at rung {rung}",
                        value,
                        step,
                        eta = self.reduction_factor,
                        n,
                        rung
                    ),
                    record,
                );
            }
            rung += 1;
        }
    }
}

impl Pruner for SuccessiveHalvingPruner {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
    ) -> Decision {
        self.decide(study, trial, state, Competitors::Scan(&|_| true), R)
    }

    fn prune_indexed(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
        index: Option<&StudyIndex>,
    ) -> Decision {
        match index {
            Some(ix) => self.decide(study, trial, state, Competitors::Index(ix), R),
            None => self.prune(study, trial, state),
        }
    }

    fn uses_index(&self) -> bool {
        true
    }
}

/// `successiveHalving: {minResource, reductionFactor, minEarlyStoppingRate, bootstrapCount}`.
#[derive(Clone, Debug, PartialEq)]
pub struct SuccessiveHalvingSpec {
    pub min_resource: Resource,
    pub reduction_factor: i64,
    pub min_early_stopping_rate: i64,
    pub bootstrap_count: i64,
}

impl Default for SuccessiveHalvingSpec {
    fn default() -> Self {
        SuccessiveHalvingSpec {
            min_resource: Resource::Auto,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        }
    }
}

impl PrunerParams for SuccessiveHalvingSpec {
    const KEY: &str = "successiveHalving";
    const NAME: &str = R;

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        f.only(&[
            "minResource",
            "reductionFactor",
            "minEarlyStoppingRate",
            "bootstrapCount",
        ])?;
        let d = SuccessiveHalvingSpec::default();
        Ok(SuccessiveHalvingSpec {
            min_resource: f.resource("minResource", d.min_resource)?,
            reduction_factor: f.int("reductionFactor", d.reduction_factor)?,
            min_early_stopping_rate: f.int("minEarlyStoppingRate", d.min_early_stopping_rate)?,
            bootstrap_count: f.int("bootstrapCount", d.bootstrap_count)?,
        })
    }

    fn to_value(&self) -> Value {
        json!({
            "minResource": self.min_resource.to_value(),
            "reductionFactor": self.reduction_factor,
            "minEarlyStoppingRate": self.min_early_stopping_rate,
            "bootstrapCount": self.bootstrap_count})
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        if let Resource::Steps(n) = self.min_resource {
            at_least(p, "minResource", n, 1)?;
        }
        at_least(p, "reductionFactor", self.reduction_factor, 2)?;
        at_least(p, "minEarlyStoppingRate", self.min_early_stopping_rate, 0)?;
        at_least(p, "bootstrapCount", self.bootstrap_count, 0)?;
        if self.bootstrap_count > 0 && self.min_resource == Resource::Auto {
            return Err(invalid(
                &format!("{p}.bootstrapCount"),
                format!(
                    "must be 0 when minResource is auto, got {}",
                    self.bootstrap_count
                ),
            ));
        }
        Ok(())
    }

    fn build(&self) -> Box<dyn Pruner> {
        Box::new(SuccessiveHalvingPruner {
            min_resource: self.min_resource.steps(),
            reduction_factor: self.reduction_factor,
            min_early_stopping_rate: self.min_early_stopping_rate,
            bootstrap_count: self.bootstrap_count.max(0) as u64,
        })
    }
}
