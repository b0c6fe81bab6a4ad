//! The results file `lopper run --output` writes and `lopper plot` / `--warm-start` read.
//!
//! ```json
//! {"study": "digits", "direction": "minimize", "objective": "val_loss",
//!  "best": {"number": 7, "value": 0.041, "params": {...}},
//!  "trials": [{"number": 0, "state": "complete", "params": {...}, "value": 0.05,
//!              "prunedAtStep": null, "intermediate": [[0, 0.91], [1, 0.55]], "seconds": 3.2}],
//!  "stepsRun": 412, "stepsSavedEstimate": 488}
//! ```
//! A NaN value is written as `null` (JSON has no NaN) and read back as NaN.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::{Direction, Params, TrialRecord, TrialState};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    pub study: String,
    pub direction: Direction,
    /// The objective metric's name (axis label of the plot).
    #[serde(default)]
    pub objective: String,
    /// How the study ended: `Succeeded`, `Failed` or `Interrupted`, with the reason.
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub reason: String,
    pub best: Option<Best>,
    pub trials: Vec<TrialResult>,
    /// Steps (intermediate reports) all trials ran.
    pub steps_run: u64,
    /// Steps the pruned trials would have run to reach the full length of the longest
    /// completed trial.
    pub steps_saved_estimate: u64,
    #[serde(default)]
    pub seconds: f64,
    /// Spent and left of `spec.budget`, when the study has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::engine::budget::BudgetStatus>,
    /// `spec.maxTrials` and the pruner's name, for the dashboard's progress and pruner columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trials: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pruner: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Best {
    pub number: u64,
    pub value: f64,
    pub params: Params,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialResult {
    pub number: u64,
    pub state: TrialState,
    pub params: Params,
    #[serde(with = "nan_as_null")]
    pub value: Option<f64>,
    pub pruned_at_step: Option<i64>,
    #[serde(with = "curve")]
    pub intermediate: Vec<(i64, f64)>,
    pub seconds: f64,
    /// Why it was pruned or failed (e.g. `MedianPruner`, `Error`, `Interrupted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last lines of stderr of a failed trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// Successive halving's recorded rung values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rungs: BTreeMap<u32, f64>,
}

impl TrialResult {
    /// The engine's view of this trial (for warm starts).
    pub fn to_record(&self) -> TrialRecord {
        let mut r = TrialRecord::new(self.number);
        r.state = self.state;
        r.params = self.params.clone();
        r.intermediate = self.intermediate.iter().copied().collect();
        r.value = self.value;
        r.rungs = self.rungs.clone();
        r
    }
}

impl Results {
    pub fn read(path: &Path) -> anyhow::Result<Results> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading results file {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("parsing results file {}", path.display()))
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .with_context(|| format!("writing results file {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("writing results file {}", path.display()))
    }

    /// Fills `best`, `stepsRun` and `stepsSavedEstimate` from `trials`.
    pub fn summarize(&mut self) {
        self.best = None;
        for t in &self.trials {
            if t.state != TrialState::Complete {
                continue;
            }
            let Some(v) = t.value.filter(|v| !v.is_nan()) else {
                continue;
            };
            if self
                .best
                .as_ref()
                .is_none_or(|b| self.direction.better(v, b.value))
            {
                self.best = Some(Best {
                    number: t.number,
                    value: v,
                    params: t.params.clone(),
                });
            }
        }
        self.steps_run = self
            .trials
            .iter()
            .map(|t| t.intermediate.len() as u64)
            .sum();
        let full = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .map(|t| t.intermediate.len() as u64)
            .max()
            .unwrap_or(0);
        self.steps_saved_estimate = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Pruned)
            .map(|t| full.saturating_sub(t.intermediate.len() as u64))
            .sum();
    }
}

mod nan_as_null {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.is_finite() => s.serialize_some(x),
            _ => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<f64>::deserialize(d)
    }
}

mod curve {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[(i64, f64)], s: S) -> Result<S::Ok, S::Error> {
        let pts: Vec<(i64, Option<f64>)> = v
            .iter()
            .map(|&(step, x)| (step, x.is_finite().then_some(x)))
            .collect();
        pts.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(i64, f64)>, D::Error> {
        let pts = Vec::<(i64, Option<f64>)>::deserialize(d)?;
        Ok(pts
            .into_iter()
            .map(|(step, x)| (step, x.unwrap_or(f64::NAN)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_round_trips_as_null() {
        let t = TrialResult {
            number: 0,
            state: TrialState::Pruned,
            params: Params::new(),
            value: Some(f64::NAN),
            pruned_at_step: Some(1),
            intermediate: vec![(0, 0.5), (1, f64::NAN)],
            seconds: 1.0,
            reason: None,
            message: None,
            stderr_tail: None,
            rungs: BTreeMap::new(),
        };
        let json = serde_json::to_string(&t).unwrap();
        assert!(
            json.contains(r#""intermediate":[[0,0.5],[1,null]]"#),
            "{json}"
        );
        assert!(json.contains(r#""value":null"#), "{json}");
        let back: TrialResult = serde_json::from_str(&json).unwrap();
        assert!(back.intermediate[1].1.is_nan());
        let rec = back.to_record();
        assert!(rec.intermediate[&1].is_nan());
        assert_eq!(rec.state, TrialState::Pruned);
    }
}
