//! Replay of recorded learning curves through a pruner: a pure function from a
//! [`ReplayInput`] to a [`ReplayOutput`], used by `lopper replay` and by tests.
//!
//! Semantics (as a sequential Optuna ask/report/should_prune/tell loop): trials run one
//! after another, trial i has number i, reports its values step by step and asks the
//! pruner after every report; a pruned trial stops there (its value becomes its last
//! intermediate value), a trial never pruned completes with its last value (a NaN or
//! missing last value makes it FAILED, as Optuna's `tell` does).

use serde::Serialize;
use serde_json::Value;

use super::pruners::wilcoxon::best_trial;
use super::pruners::{PrunerSpec, SpecError, StudyIndex, build};
use super::{Direction, PrunerState, StudyView, TrialRecord, TrialState};

/// Malformed replay input; Display names the place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Spec(#[from] SpecError),
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ReplayError {
    ReplayError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// One recorded learning curve: values by step (`None` = a reported NaN).
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub steps: Vec<i64>,
    pub values: Vec<Option<f64>>,
}

/// What to replay.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayInput {
    pub study: String,
    pub direction: Direction,
    pub pruner: PrunerSpec,
    pub trials: Vec<Curve>,
}

/// The outcome of one trial.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialOutcome {
    pub number: u64,
    pub state: TrialState,
    pub pruned_at_step: Option<i64>,
    pub value: Option<f64>,
    pub steps_run: u64,
    /// The deciding pruner's message when pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Best {
    pub number: u64,
    pub value: f64,
}

/// Replay result, serialized as `lopper replay`'s JSON output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutput {
    pub study: String,
    pub direction: Direction,
    pub pruner: PrunerSpec,
    pub trials: Vec<TrialOutcome>,
    pub best: Option<Best>,
    pub steps_run: u64,
    pub steps_saved: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruner_state: Option<PrunerState>,
}

impl ReplayInput {
    /// Parses a JSON value (from JSON or YAML); errors name the place, e.g. `trials[2].values[5]`.
    pub fn from_value(v: &Value) -> Result<Self, ReplayError> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("(root)", "must be an object with `pruner` and `trials`"))?;
        for k in obj.keys() {
            if !["study", "direction", "pruner", "trials"].contains(&k.as_str()) {
                return Err(invalid(
                    k.clone(),
                    "unknown field, expected one of study, direction, pruner, trials",
                ));
            }
        }
        let study = match obj.get("study") {
            None | Some(Value::Null) => "replay".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(invalid("study", format!("must be a string, got {other}"))),
        };
        let direction = match obj.get("direction") {
            None | Some(Value::Null) => Direction::Minimize,
            Some(Value::String(s)) if s == "minimize" => Direction::Minimize,
            Some(Value::String(s)) if s == "maximize" => Direction::Maximize,
            Some(other) => {
                return Err(invalid(
                    "direction",
                    format!("must be \"minimize\" or \"maximize\", got {other}"),
                ));
            }
        };
        let pruner = match obj.get("pruner") {
            None => return Err(invalid("pruner", "missing required field")),
            Some(p) => PrunerSpec::from_value(p, "pruner")?,
        };
        let Some(trials_v) = obj.get("trials") else {
            return Err(invalid("trials", "missing required field"));
        };
        let arr = trials_v
            .as_array()
            .ok_or_else(|| invalid("trials", "must be an array of curves"))?;
        let mut trials = Vec::with_capacity(arr.len());
        for (i, t) in arr.iter().enumerate() {
            trials.push(parse_curve(t, &format!("trials[{i}]"))?);
        }
        Ok(ReplayInput {
            study,
            direction,
            pruner,
            trials,
        })
    }

    /// Parses JSON (text starting with `{`) or YAML.
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        let v: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| {
                invalid(
                    format!("line {} column {}", e.line(), e.column()),
                    format!("invalid JSON: {e}"),
                )
            })?
        } else {
            serde_yaml::from_str(text).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!("line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| "(document)".into());
                invalid(at, format!("invalid YAML: {e}"))
            })?
        };
        Self::from_value(&v)
    }
}

fn parse_curve(v: &Value, path: &str) -> Result<Curve, ReplayError> {
    let obj = v.as_object().ok_or_else(|| {
        invalid(
            path,
            "must be an object with `values` (and optional `steps`)",
        )
    })?;
    for k in obj.keys() {
        if k != "steps" && k != "values" {
            return Err(invalid(
                format!("{path}.{k}"),
                "unknown field, expected steps or values",
            ));
        }
    }
    let vals = obj
        .get("values")
        .ok_or_else(|| invalid(format!("{path}.values"), "missing required field"))?
        .as_array()
        .ok_or_else(|| {
            invalid(
                format!("{path}.values"),
                "must be an array of numbers or null",
            )
        })?;
    let mut values = Vec::with_capacity(vals.len());
    for (j, x) in vals.iter().enumerate() {
        values.push(match x {
            Value::Null => None,
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.eq_ignore_ascii_case("nan") => None,
            Value::String(s) if matches!(s.as_str(), "inf" | "Infinity" | "+inf") => {
                Some(f64::INFINITY)
            }
            Value::String(s) if matches!(s.as_str(), "-inf" | "-Infinity") => {
                Some(f64::NEG_INFINITY)
            }
            other => {
                return Err(invalid(
                    format!("{path}.values[{j}]"),
                    format!("must be a number or null, got {other}"),
                ));
            }
        });
    }
    let steps = match obj.get("steps") {
        None | Some(Value::Null) => (0..values.len() as i64).collect(),
        Some(s) => {
            let arr = s.as_array().ok_or_else(|| {
                invalid(
                    format!("{path}.steps"),
                    "must be an array of non-negative integers",
                )
            })?;
            if arr.len() != values.len() {
                return Err(invalid(
                    format!("{path}.steps"),
                    format!("has {} entries but values has {}", arr.len(), values.len()),
                ));
            }
            let mut steps = Vec::with_capacity(arr.len());
            for (j, x) in arr.iter().enumerate() {
                match x.as_i64() {
                    Some(n) if n >= 0 => steps.push(n),
                    _ => {
                        return Err(invalid(
                            format!("{path}.steps[{j}]"),
                            format!("must be a non-negative integer, got {x}"),
                        ));
                    }
                }
            }
            steps
        }
    };
    Ok(Curve { steps, values })
}

/// Replays `input` (with the incremental study index).
pub fn replay(input: &ReplayInput) -> Result<ReplayOutput, ReplayError> {
    replay_with(input, true)
}

/// Replays `input`; `indexed = false` makes every pruner rescan the study (the path the
/// controller takes), which must decide identically.
pub fn replay_with(input: &ReplayInput, indexed: bool) -> Result<ReplayOutput, ReplayError> {
    let pruner = build(&input.pruner)?;
    let mut state = PrunerState::default();
    let mut index = StudyIndex::new();
    let mut trials: Vec<TrialRecord> = Vec::with_capacity(input.trials.len());
    let mut outcomes = Vec::with_capacity(input.trials.len());
    let (mut total_run, mut total_saved) = (0u64, 0u64);
    for (i, curve) in input.trials.iter().enumerate() {
        trials.push(TrialRecord::new(i as u64));
        let mut pruned: Option<(i64, String)> = None;
        let mut run = 0u64;
        for (&step, v) in curve.steps.iter().zip(&curve.values) {
            trials[i].report(step, v.unwrap_or(f64::NAN));
            run += 1;
            let view = StudyView {
                name: &input.study,
                direction: input.direction,
                trials: &trials,
            };
            let d = pruner.prune_indexed(
                &view,
                &trials[i],
                &mut state,
                if indexed { Some(&index) } else { None },
            );
            if !d.record_rungs.is_empty() {
                index.on_rungs(&d.record_rungs);
                trials[i].rungs.extend(d.record_rungs);
            }
            if d.prune {
                pruned = Some((step, format!("{}: {}", d.reason, d.message)));
                break;
            }
        }
        let t = &mut trials[i];
        let (pruned_at_step, reason) = match pruned {
            Some((step, msg)) => {
                t.state = TrialState::Pruned;
                t.value = t.last_value().filter(|v| !v.is_nan());
                (Some(step), Some(msg))
            }
            None => {
                let last = curve.values.last().map(|v| v.unwrap_or(f64::NAN));
                match last {
                    Some(v) if !v.is_nan() => {
                        t.state = TrialState::Complete;
                        t.value = Some(v);
                    }
                    _ => {
                        t.state = TrialState::Failed;
                        t.value = None;
                    }
                }
                (None, None)
            }
        };
        if indexed {
            index.on_finished(t);
        }
        let saved = curve.values.len() as u64 - run;
        total_run += run;
        total_saved += saved;
        outcomes.push(TrialOutcome {
            number: i as u64,
            state: t.state,
            pruned_at_step,
            value: t.value,
            steps_run: run,
            reason,
        });
    }
    let view = StudyView {
        name: &input.study,
        direction: input.direction,
        trials: &trials,
    };
    let best = best_trial(&view).and_then(|t| {
        t.value.map(|value| Best {
            number: t.number,
            value,
        })
    });
    Ok(ReplayOutput {
        study: input.study.clone(),
        direction: input.direction,
        pruner: input.pruner.clone(),
        trials: outcomes,
        best,
        steps_run: total_run,
        steps_saved: total_saved,
        pruner_state: if state == PrunerState::default() {
            None
        } else {
            Some(state)
        },
    })
}
