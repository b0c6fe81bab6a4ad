//! Optuna's `PercentilePruner`: keep a trial whose best value so far is within the given
//! percentile of the completed trials' values at the same step.

use serde_json::{Value, json};

use super::spec::{Fields, PrunerParams, SpecError, at_least, invalid};
use super::{Decision, Pruner, StudyIndex, is_first_in_interval_step, nan_best};
use crate::engine::{Direction, PrunerState, StudyView, TrialRecord, TrialState};

/// Percentile pruner (also the engine of the median pruner).
#[derive(Clone, Debug, PartialEq)]
pub struct PercentilePruner {
    pub percentile: f64,
    pub n_startup_trials: u64,
    pub n_warmup_steps: i64,
    pub interval_steps: i64,
    pub n_min_trials: u64,
    /// Class name reported as the decision's reason.
    pub(crate) reason: &'static str,
}

impl PercentilePruner {
    pub fn new(
        percentile: f64,
        n_startup_trials: u64,
        n_warmup_steps: i64,
        interval_steps: i64,
        n_min_trials: u64,
    ) -> Self {
        PercentilePruner {
            percentile,
            n_startup_trials,
            n_warmup_steps,
            interval_steps: interval_steps.max(1),
            n_min_trials,
            reason: "PercentilePruner",
        }
    }

    fn decide(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        completed: usize,
        at_step: &dyn Fn(i64) -> (usize, f64),
    ) -> Decision {
        let r = self.reason;
        if completed == 0 {
            return Decision::keep(r, "no completed trials yet");
        }
        if (completed as u64) < self.n_startup_trials {
            return Decision::keep(
                r,
                message!(
                    "{completed} of {startup} startup trials completed",
                    completed,
                    startup = self.n_startup_trials
                ),
            );
        }
        let Some(step) = trial.last_step() else {
            return Decision::keep(r, "no intermediate value reported");
        };
        if step < self.n_warmup_steps {
            return Decision::keep(r, message!("step {step} is within warm-up", step));
        }
        if !is_first_in_interval_step(step, trial, self.n_warmup_steps, self.interval_steps) {
            return Decision::keep(r, message!("step {step} is not a pruning step", step));
        }
        let maximize = study.direction == Direction::Maximize;
        let best = nan_best(trial.intermediate.values().copied(), maximize);
        if best.is_nan() {
            return Decision::prune(r, message!("every value up to step {step} is NaN", step));
        }
        let (n, threshold) = at_step(step);
        if (n as u64) < self.n_min_trials {
            return Decision::keep(
                r,
                message!("only {n} completed trials reported step {step}", n, step),
            );
        }
        if threshold.is_nan() {
            return Decision::keep(r, message!("no percentile at step {step}", step));
        }
        let prune = if maximize {
            best < threshold
        } else {
            best > threshold
        };
        let message = message!(
            "best value {best} at step {step} is {verdict} than the percentile threshold {threshold}",
            best,
            step,
            verdict = if prune { "worse" } else { "no worse" },
            threshold
        );
        Decision {
            prune,
            reason: r,
            message,
            record_rungs: Default::default(),
        }
    }

    fn effective_percentile(&self, direction: Direction) -> f64 {
        match direction {
            Direction::Maximize => 100.0 - self.percentile,
            Direction::Minimize => self.percentile,
        }
    }
}

impl Pruner for PercentilePruner {
    fn prune(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        _state: &mut PrunerState,
    ) -> Decision {
        let completed = study
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count();
        let pct = self.effective_percentile(study.direction);
        let at_step = |step: i64| {
            let values: Vec<f64> = study
                .trials
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .filter_map(|t| t.intermediate.get(&step).copied())
                .collect();
            let n = values.len();
            let mut sorted: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            (n, nanpercentile_sorted(&sorted, pct))
        };
        self.decide(study, trial, completed, &at_step)
    }

    fn prune_indexed(
        &self,
        study: &StudyView<'_>,
        trial: &TrialRecord,
        state: &mut PrunerState,
        index: Option<&StudyIndex>,
    ) -> Decision {
        let Some(index) = index else {
            return self.prune(study, trial, state);
        };
        let pct = self.effective_percentile(study.direction);
        let at_step = |step: i64| match index.by_step.get(&step) {
            Some(sv) => (sv.len(), nanpercentile_sorted(&sv.sorted, pct)),
            None => (0, f64::NAN),
        };
        self.decide(study, trial, index.completed, &at_step)
    }

    fn uses_index(&self) -> bool {
        true
    }
}

/// numpy's `nanpercentile(values, pct)` with the default linear method, given the
/// non-NaN values sorted ascending (NaN when there are none).
pub fn nanpercentile_sorted(sorted: &[f64], pct: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let q = pct / 100.0;
    let virtual_index = (n - 1) as f64 * q;
    // numpy's _get_indexes: above the last index both neighbours are the last value
    // (and gamma is measured from index -1); below zero both are the first.
    let (prev, next, prev_f) = if virtual_index >= (n - 1) as f64 {
        (n - 1, n - 1, -1.0)
    } else if virtual_index < 0.0 {
        (0, 0, 0.0)
    } else {
        let f = virtual_index.floor();
        (f as usize, f as usize + 1, f)
    };
    let gamma = virtual_index - prev_f;
    let a = sorted[prev];
    let b = sorted[next];
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// The checks Optuna's percentile and median pruners share: `startupTrials`,
/// `warmupSteps`, `intervalSteps`, `minTrials`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub startup_trials: i64,
    pub warmup_steps: i64,
    pub interval_steps: i64,
    pub min_trials: i64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            startup_trials: 5,
            warmup_steps: 0,
            interval_steps: 1,
            min_trials: 1,
        }
    }
}

impl Gate {
    pub(super) const FIELDS: [&str; 4] =
        ["startupTrials", "warmupSteps", "intervalSteps", "minTrials"];

    pub(super) fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        let d = Gate::default();
        Ok(Gate {
            startup_trials: f.int("startupTrials", d.startup_trials)?,
            warmup_steps: f.int("warmupSteps", d.warmup_steps)?,
            interval_steps: f.int("intervalSteps", d.interval_steps)?,
            min_trials: f.int("minTrials", d.min_trials)?,
        })
    }

    pub(super) fn insert_into(&self, v: &mut Value) {
        v["startupTrials"] = json!(self.startup_trials);
        v["warmupSteps"] = json!(self.warmup_steps);
        v["intervalSteps"] = json!(self.interval_steps);
        v["minTrials"] = json!(self.min_trials);
    }

    pub(super) fn validate(&self, p: &str) -> Result<(), SpecError> {
        at_least(p, "startupTrials", self.startup_trials, 0)?;
        at_least(p, "warmupSteps", self.warmup_steps, 0)?;
        at_least(p, "intervalSteps", self.interval_steps, 1)?;
        at_least(p, "minTrials", self.min_trials, 1)
    }

    /// The pruner at `percentile` with these checks.
    pub(super) fn pruner(&self, percentile: f64) -> PercentilePruner {
        let u = |v: i64| v.max(0) as u64;
        PercentilePruner::new(
            percentile,
            u(self.startup_trials),
            self.warmup_steps,
            self.interval_steps,
            u(self.min_trials),
        )
    }
}

/// `percentile: {percentile, startupTrials, warmupSteps, intervalSteps, minTrials}`.
#[derive(Clone, Debug, PartialEq)]
pub struct PercentileSpec {
    pub percentile: f64,
    pub gate: Gate,
}

impl PrunerParams for PercentileSpec {
    const KEY: &str = "percentile";
    const NAME: &str = "PercentilePruner";

    fn parse(f: &Fields<'_>) -> Result<Self, SpecError> {
        let mut allowed = vec!["percentile"];
        allowed.extend(Gate::FIELDS);
        f.only(&allowed)?;
        Ok(PercentileSpec {
            percentile: f.required_float("percentile")?,
            gate: Gate::parse(f)?,
        })
    }

    fn to_value(&self) -> Value {
        let mut v = json!({"percentile": self.percentile});
        self.gate.insert_into(&mut v);
        v
    }

    fn validate(&self, p: &str) -> Result<(), SpecError> {
        if !(0.0..=100.0).contains(&self.percentile) {
            return Err(invalid(
                &format!("{p}.percentile"),
                format!("must be within [0, 100], got {}", self.percentile),
            ));
        }
        self.gate.validate(p)
    }

    fn build(&self) -> Box<dyn Pruner> {
        Box::new(self.gate.pruner(self.percentile))
    }
}
