//! The budget-aware ASHA planner as a pruner: the [`plan`](crate::engine::planner) deals
//! each trial to a bracket (the full-length bracket's trials first, when the plan has
//! one); at each of its bracket's rungs a trial goes on only if its
//! value is in the top `1/eta` of the values its bracket's trials had at that rung
//! (asynchronous successive halving, ties promoted), or at least as good as the best
//! completed trial of the full-length bracket was at the same step (the floor: a trial on
//! course to beat the trials no rung stopped goes on; low rungs rank badly, and this keeps
//! the rung from stopping the trials that matter most). The floor can promote more than
//! `1/eta` of a rung, so a study may spend a little more than the plan expects; its budget
//! cuts that. A stopped trial is pruned, so its Job
//! is deleted as with every pruner. Rungs count reported steps, so 0- and 1-based step
//! numbers plan alike.

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, SpecError, at_least, invalid};
use super::successive_halving::promotable;
use super::{Decision, Pruner};
use crate::engine::planner::{self, Deal, Mode, Plan, PlanInput};
use crate::engine::{Direction, PrunerState, StudyView, TrialRecord, TrialState};

const R: &str = "AshaPlanner";

/// The pruner, with its plan computed once.
#[derive(Clone, Debug)]
pub struct AshaPruner {
    plan: Plan,
    deal: Deal,
    eta: i64,
}

impl AshaPruner {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn bracket_of(&self, number: u64) -> Option<usize> {
        self.deal.bracket_of(number)
    }

    /// The floor at a rung: the value, at its `step`-th reported step, of the best
    /// completed trial of the full-length bracket run first (ties: the earliest). `None`
    /// without such a trial (no full-length bracket, or none of its trials done yet).
    fn floor_at(&self, study: &StudyView<'_>, step: u64, maximize: bool) -> Option<f64> {
        let first = self.plan.startup_bracket()?;
        let mut best: Option<(f64, &TrialRecord)> = None;
        for t in study.trials {
            if t.state != TrialState::Complete
                || (t.intermediate.len() as u64) < step
                || self.bracket_of(t.number) != Some(first)
            {
                continue;
            }
            let Some(v) = t.value.filter(|v| !v.is_nan()) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((b, _)) => (maximize && v > b) || (!maximize && v < b),
            };
            if better {
                best = Some((v, t));
            }
        }
        let (_, t) = best?;
        let at = t.intermediate.values().nth(step.checked_sub(1)? as usize)?;
        (!at.is_nan()).then_some(*at)
    }
}

impl Pruner for AshaPruner {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        _state: &mut PrunerState,
    ) -> Decision {
        let Some(b) = self.bracket_of(trial.number) else {
            return Decision::keep(R, "the plan has no trials (budget below one trial)");
        };
        let Some(value) = trial.last_value() else {
            return Decision::keep(R, "no intermediate value reported");
        };
        let done = trial.intermediate.len() as u64;
        let maximize = study.direction == Direction::Maximize;
        let mut d = Decision::keep(R, "");
        for (k, rung_step) in self.plan.brackets[b].decision_steps().enumerate() {
            let k = k as u32;
            if rung_step > done {
                d.message = message!(
                    "bracket {b}: {done} steps, next rung {k} at {rung_step}",
                    b,
                    done,
                    k,
                    rung_step
                );
                return d;
            }
            if trial.rungs.contains_key(&k) {
                continue;
            }
            if value.is_nan() {
                d.prune = true;
                d.message = message!("bracket {b}: value at rung {k} is NaN", b, k);
                return d;
            }
            d.record_rungs.insert(k, value);
            let (mut n, mut better) = (1usize, 0usize);
            for t in study.trials.iter().filter(|t| t.number != trial.number) {
                if let Some(&v) = t.rungs.get(&k)
                    && self.bracket_of(t.number) == Some(b)
                {
                    n += 1;
                    if (maximize && v > value) || (!maximize && v < value) {
                        better += 1;
                    }
                }
            }
            if !promotable(n, self.eta, better) {
                if let Some(floor) = self.floor_at(study, rung_step, maximize)
                    && ((maximize && value >= floor) || (!maximize && value <= floor))
                {
                    d.message = message!(
                        "bracket {b}: value {value} at rung {k} is not in the top 1/{eta} but as good as the best full-length trial was at that step ({floor}): goes on",
                        b,
                        value,
                        k,
                        eta = self.eta,
                        floor
                    );
                    continue;
                }
                d.prune = true;
                d.message = message!(
                    "bracket {b}: value {value} is not in the top 1/{eta} of {n} trials at rung {k}",
                    b,
                    value,
                    eta = self.eta,
                    n,
                    k
                );
                return d;
            }
        }
        d.message = message!("bracket {b}: past every rung, runs to full length", b);
        d
    }
}

/// `asha: {mode, maxSteps, reductionFactor, maxRungs, budgetSteps, parallelism}`;
/// `budgetSteps` and `parallelism` default to the study's `budget.steps` and `parallelism`.
#[derive(Clone, Debug, PartialEq)]
pub struct AshaSpec {
    pub mode: Mode,
    /// A trial's full length in reported steps.
    pub max_steps: i64,
    pub reduction_factor: i64,
    pub max_rungs: i64,
    pub budget_steps: Option<i64>,
    pub parallelism: Option<i64>,
}

impl Default for AshaSpec {
    fn default() -> Self {
        AshaSpec {
            mode: Mode::Standard,
            max_steps: 0,
            reduction_factor: 3,
            max_rungs: 5,
            budget_steps: None,
            parallelism: None,
        }
    }
}

impl AshaSpec {
    /// The plan's inputs (from a spec that passed validation).
    pub fn input(&self) -> PlanInput {
        PlanInput {
            budget_steps: self.budget_steps.unwrap_or(0).max(0) as u64,
            max_steps: self.max_steps.max(1) as u64,
            parallelism: self.parallelism.unwrap_or(1).clamp(1, u32::MAX.into()) as u32,
            mode: self.mode,
            reduction_factor: self.reduction_factor.max(2) as u64,
            max_rungs: self.max_rungs.clamp(1, 10) as u32,
        }
    }

    pub fn plan(&self) -> Plan {
        planner::plan(&self.input())
    }
}

impl PrunerParams for AshaSpec {
    const KEY: &str = "asha";
    const NAME: &str = R;

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        f.only(&[
            "mode",
            "maxSteps",
            "reductionFactor",
            "maxRungs",
            "budgetSteps",
            "parallelism",
        ])?;
        let d = AshaSpec::default();
        let mode = match f.get("mode") {
            None => d.mode,
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                invalid(
                    &f.at("mode"),
                    format!("must be aggressive, standard or conservative, got {v}"),
                )
            })?,
        };
        let opt = |field: &str| -> Result<Option<i64>, SpecError> {
            match f.get(field) {
                None => Ok(None),
                Some(_) => f.int(field, 0).map(Some),
            }
        };
        Ok(AshaSpec {
            mode,
            max_steps: opt("maxSteps")?.ok_or_else(|| SpecError::Missing {
                path: f.path.to_string(),
                field: "maxSteps".into(),
            })?,
            reduction_factor: f.int("reductionFactor", d.reduction_factor)?,
            max_rungs: f.int("maxRungs", d.max_rungs)?,
            budget_steps: opt("budgetSteps")?,
            parallelism: opt("parallelism")?,
        })
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "mode": self.mode.as_str(),
            "maxSteps": self.max_steps,
            "reductionFactor": self.reduction_factor,
            "maxRungs": self.max_rungs});
        if let Some(b) = self.budget_steps {
            v["budgetSteps"] = json!(b);
        }
        if let Some(p) = self.parallelism {
            v["parallelism"] = json!(p);
        }
        v
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        at_least(p, "maxSteps", self.max_steps, 1)?;
        at_least(p, "reductionFactor", self.reduction_factor, 2)?;
        at_least(p, "maxRungs", self.max_rungs, 1)?;
        if self.max_rungs > 10 {
            return Err(invalid(
                &format!("{p}.maxRungs"),
                format!("must be at most 10, got {}", self.max_rungs),
            ));
        }
        match self.budget_steps {
            None => {
                return Err(invalid(
                    &format!("{p}.budgetSteps"),
                    "is required: set spec.budget.steps (or budgetSteps here)",
                ));
            }
            Some(b) => at_least(p, "budgetSteps", b, 1)?,
        }
        if let Some(n) = self.parallelism {
            at_least(p, "parallelism", n, 1)?;
        }
        Ok(())
    }

    fn build(&self) -> Box<dyn Pruner> {
        let plan = self.plan();
        Box::new(AshaPruner {
            deal: plan.deal(),
            plan,
            eta: self.reduction_factor.max(2),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TrialState;

    fn spec(budget: i64) -> AshaSpec {
        AshaSpec {
            mode: Mode::Aggressive,
            max_steps: 9,
            budget_steps: Some(budget),
            parallelism: Some(1),
            ..Default::default()
        }
    }

    fn curve(n: u64, steps: usize, level: f64) -> TrialRecord {
        let mut t = TrialRecord::new(n);
        for s in 0..steps {
            t.report(s as i64, level + 1.0 / (s + 1) as f64);
        }
        t
    }

    /// Replays trials one after another, as Optuna's ask/tell loop, recording rungs.
    fn run(p: &dyn Pruner, levels: &[f64]) -> Vec<TrialRecord> {
        let mut done: Vec<TrialRecord> = Vec::new();
        for (n, &level) in levels.iter().enumerate() {
            let full = curve(n as u64, 9, level);
            let mut t = TrialRecord::new(n as u64);
            for (&s, &v) in &full.intermediate {
                t.report(s, v);
                let mut all = done.clone();
                all.push(t.clone());
                let view = StudyView {
                    name: "s",
                    direction: Direction::Minimize,
                    trials: &all,
                };
                let d = p.prune(&view, &t, &mut PrunerState::default());
                t.rungs.extend(d.record_rungs);
                if d.prune {
                    t.state = TrialState::Pruned;
                    break;
                }
            }
            if t.state == TrialState::Running {
                t.state = TrialState::Complete;
                t.value = t.last_value();
            }
            done.push(t);
        }
        done
    }

    #[test]
    fn stops_trials_by_rung_within_a_bracket() {
        let s = spec(90);
        s.validate("pruner.asha").unwrap();
        let p = s.build();
        // Aggressive, 9 steps, eta 3: rungs at 1 and 3 reported steps, then 9.
        let levels = [5.0, 4.0, 6.0, 3.0, 7.0, 8.0, 2.0, 9.0, 10.0];
        let trials = run(p.as_ref(), &levels);
        let lengths: Vec<usize> = trials.iter().map(|t| t.intermediate.len()).collect();
        // Trial 2 (6.0) is worse than 2 of 3 at rung 0 and stops after 1 step; trial 3
        // (3.0, the best so far) runs on; the worst stop at the first rung.
        assert_eq!(lengths[2], 1, "{lengths:?}");
        assert_eq!(lengths[3], 9, "{lengths:?}");
        assert_eq!(lengths[6], 9, "{lengths:?}");
        assert_eq!(lengths[8], 1, "{lengths:?}");
        assert!(trials[2].state == TrialState::Pruned);
        let spent: usize = lengths.iter().sum();
        assert!(spent < 9 * levels.len(), "pruning saved steps: {spent}");
    }

    #[test]
    fn never_stops_a_trial_as_good_as_the_best_full_length_trial_was() {
        // Standard, 9 steps, 10 trials' worth: 3 full-length trials first, then a 3-rung
        // bracket (rungs at 1 and 3 steps) and a 2-rung one.
        let s = AshaSpec {
            mode: Mode::Standard,
            budget_steps: Some(90),
            ..spec(90)
        };
        let deal = s.plan().deal();
        assert_eq!(deal.startup, 3);
        let first: Vec<usize> = (3..deal.len())
            .filter(|&n| deal.bracket_of(n as u64) == Some(0))
            .take(3)
            .collect();
        let [a, b, c] = first[..] else {
            panic!("{deal:?}")
        };
        let lengths = |level_c: f64| {
            let mut levels: Vec<f64> = (0..=c).map(|n| 20.0 + n as f64).collect();
            levels[..3].copy_from_slice(&[5.0, 6.0, 7.0]);
            (levels[a], levels[b], levels[c]) = (1.0, 2.0, level_c);
            let trials = run(s.build().as_ref(), &levels);
            trials[c].intermediate.len()
        };
        // Third of three at the first rung, so not in its top 1/3; but as good at that step
        // as the best full-length trial (level 5.0) was: it goes on to full length.
        assert_eq!(lengths(4.0), 9);
        // Worse than that trial was at that step: stopped at the first rung.
        assert_eq!(lengths(5.5), 1);
    }

    #[test]
    fn spec_errors_name_the_field() {
        let e = spec(90);
        let no_budget = AshaSpec {
            budget_steps: None,
            ..e.clone()
        };
        assert_eq!(
            no_budget.validate("pruner.asha").unwrap_err().to_string(),
            "pruner.asha.budgetSteps: is required: set spec.budget.steps (or budgetSteps here)"
        );
        let bad = serde_json::from_value::<super::super::PrunerSpec>(
            json!({"asha": {"maxSteps": 9, "mode": "bold"}}),
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("pruner.asha.mode"), "{bad}");
        let missing = serde_json::from_value::<super::super::PrunerSpec>(json!({"asha": {}}))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("missing required field `maxSteps`"),
            "{missing}"
        );
    }
}
