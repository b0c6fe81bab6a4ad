//! A study's compute budget (`spec.budget`): reported steps and/or GPU-hours summed over
//! all its trials. Pure: the caller says how many GPU-seconds were accounted (the operator
//! from trial start/completion times, `lopper run` from its process clocks).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TrialRecord;

/// A budget field that cannot hold; Display names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    #[error("spec.budget: needs at least one of steps, gpuHours")]
    Empty,
    #[error("spec.budget.steps: must be at least 1, got {0}")]
    Steps(u64),
    #[error("spec.budget.gpuHours: must be a finite number above 0, got {0}")]
    GpuHours(f64),
}

/// What running trials do once the budget is spent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnSpent {
    /// They run to their end (the study may overshoot by what they still report).
    #[default]
    Finish,
    /// They are stopped at once and count as pruned at their last step.
    Stop,
}

/// `spec.budget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Reported steps summed over all trials (every trial's distinct reported steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub steps: Option<u64>,
    /// GPU-hours summed over all trials (`status.gpuSeconds.used` / 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub gpu_hours: Option<f64>,
    /// `finish` (default): running trials run to their end; `stop`: they are stopped.
    #[serde(default)]
    pub on_spent: OnSpent,
}

/// What a study has spent so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spent {
    pub steps: u64,
    pub gpu_seconds: f64,
}

impl Spent {
    /// Steps reported by `trials`, with `gpu_seconds` accounted by the caller.
    pub fn of(trials: &[TrialRecord], gpu_seconds: f64) -> Spent {
        Spent {
            steps: steps_spent(trials),
            gpu_seconds,
        }
    }

    pub fn gpu_hours(&self) -> f64 {
        self.gpu_seconds / 3600.0
    }
}

/// Reported steps summed over all trials.
pub fn steps_spent(trials: &[TrialRecord]) -> u64 {
    trials.iter().map(|t| t.intermediate.len() as u64).sum()
}

/// `status.budget`: spent and left per limit, and a one-line summary for `kubectl get`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_spent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_left: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_hours_spent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_hours_left: Option<f64>,
    /// e.g. `120/500 steps` or `120/500 steps, 0.4/2 GPU-h`.
    pub summary: String,
}

impl Budget {
    /// Checks what the schema checks, for manifests that never met the API server.
    pub fn validate(&self) -> Result<(), BudgetError> {
        if self.steps.is_none() && self.gpu_hours.is_none() {
            return Err(BudgetError::Empty);
        }
        if let Some(s) = self.steps
            && s < 1
        {
            return Err(BudgetError::Steps(s));
        }
        if let Some(h) = self.gpu_hours
            && !(h.is_finite() && h > 0.0)
        {
            return Err(BudgetError::GpuHours(h));
        }
        Ok(())
    }

    /// Which limit `spent` reached, as a sentence (`None`: budget left).
    pub fn spent_by(&self, spent: &Spent) -> Option<String> {
        if let Some(max) = self.steps
            && spent.steps >= max
        {
            return Some(format!("{} of {max} budgeted steps reported", spent.steps));
        }
        if let Some(max) = self.gpu_hours
            && spent.gpu_hours() >= max
        {
            return Some(format!(
                "{} of {max} budgeted GPU-hours used",
                round2(spent.gpu_hours())
            ));
        }
        None
    }

    /// The limits, e.g. `1200 steps, 2 GPU-h`.
    pub fn limits(&self) -> String {
        let steps = self.steps.map(|s| format!("{s} steps"));
        let gpu = self.gpu_hours.map(|h| format!("{h} GPU-h"));
        [steps, gpu]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Spent and left for each limit set.
    pub fn status(&self, spent: &Spent) -> BudgetStatus {
        let mut s = BudgetStatus::default();
        let mut parts = Vec::new();
        if let Some(max) = self.steps {
            s.steps_spent = Some(spent.steps);
            s.steps_left = Some(max.saturating_sub(spent.steps));
            parts.push(format!("{}/{max} steps", spent.steps));
        }
        if let Some(max) = self.gpu_hours {
            let used = round2(spent.gpu_hours());
            s.gpu_hours_spent = Some(used);
            s.gpu_hours_left = Some(round2((max - spent.gpu_hours()).max(0.0)));
            parts.push(format!("{used}/{max} GPU-h"));
        }
        s.summary = parts.join(", ");
        s
    }
}

/// Two decimals: a status that changes at every reconcile only because of the third
/// decimal would be rewritten for nothing.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(n: u64, steps: i64) -> TrialRecord {
        let mut t = TrialRecord::new(n);
        for s in 0..steps {
            t.report(s, 1.0);
        }
        t
    }

    #[test]
    fn steps_and_gpu_hours_are_spent_and_left() {
        let b = Budget {
            steps: Some(10),
            gpu_hours: Some(2.0),
            on_spent: OnSpent::Finish,
        };
        let trials = [trial(0, 4), trial(1, 3)];
        let spent = Spent::of(&trials, 1800.0);
        assert_eq!(spent.steps, 7);
        assert_eq!(b.spent_by(&spent), None);
        let st = b.status(&spent);
        assert_eq!((st.steps_spent, st.steps_left), (Some(7), Some(3)));
        assert_eq!(
            (st.gpu_hours_spent, st.gpu_hours_left),
            (Some(0.5), Some(1.5))
        );
        assert_eq!(st.summary, "7/10 steps, 0.5/2 GPU-h");
        let spent = Spent::of(&[trial(0, 4), trial(1, 6)], 0.0);
        assert_eq!(
            b.spent_by(&spent).as_deref(),
            Some("10 of 10 budgeted steps reported")
        );
        assert_eq!(b.status(&spent).steps_left, Some(0));
        let gpu = Spent {
            steps: 0,
            gpu_seconds: 7300.0,
        };
        assert_eq!(
            b.spent_by(&gpu).as_deref(),
            Some("2.03 of 2 budgeted GPU-hours used")
        );
        assert_eq!(b.status(&gpu).gpu_hours_left, Some(0.0));
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(
            Budget::default().validate().unwrap_err().to_string(),
            "spec.budget: needs at least one of steps, gpuHours"
        );
        let b = Budget {
            gpu_hours: Some(0.0),
            ..Default::default()
        };
        assert!(
            b.validate()
                .unwrap_err()
                .to_string()
                .starts_with("spec.budget.gpuHours")
        );
        let b = Budget {
            steps: Some(0),
            ..Default::default()
        };
        assert!(
            b.validate()
                .unwrap_err()
                .to_string()
                .starts_with("spec.budget.steps")
        );
    }

    #[test]
    fn parses_camel_case_with_finish_by_default() {
        let b: Budget = serde_json::from_str(r#"{"gpuHours": 1.5}"#).unwrap();
        assert_eq!(b.on_spent, OnSpent::Finish);
        let b: Budget = serde_json::from_str(r#"{"steps": 9, "onSpent": "stop"}"#).unwrap();
        assert_eq!((b.steps, b.on_spent), (Some(9), OnSpent::Stop));
    }
}
