//! What the dashboard's JSON API returns, whatever the source (a results file, `lopper run`, the
//! operator's view). Plain data; the front-end (ui/src/app.js) reads exactly these fields.

use serde::Serialize;

use crate::engine::importance::{Importance, importance};
use crate::engine::{Direction, Params};

/// One row of the studies view.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyRow {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub objective: String,
    pub direction: Direction,
    pub best: Option<f64>,
    pub best_trial: Option<u64>,
    pub max_trials: Option<u32>,
    pub completed: u32,
    pub running: u32,
    pub pruned: u32,
    pub failed: u32,
    pub gpu_hours: Option<f64>,
    pub gpu_hours_saved: Option<f64>,
    /// RFC 3339; the page shows the age from it.
    pub created: Option<String>,
    pub pruner: String,
    pub message: String,
}

/// One trial as the study view lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialRow {
    pub number: u64,
    pub name: String,
    /// `Pending`, `Running`, `Completed`, `Pruned`, `Failed`.
    pub state: String,
    pub params: Params,
    pub value: Option<f64>,
    /// Last reported step.
    pub step: Option<i64>,
    /// Why it was pruned or failed (the condition's reason, e.g. `MedianPruner`).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub seconds: Option<f64>,
}

/// Every trial's curve, by column: series `i` is trial `trials[i]`, its points
/// `offsets[i]..offsets[i + 1]` of `steps`/`values`. Columns keep 10,000 × 100 points one
/// compact JSON document (no per-point object) that the browser turns into typed arrays.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Curves {
    pub trials: Vec<u64>,
    pub offsets: Vec<usize>,
    pub steps: Vec<i64>,
    /// At plot precision (f32: half the JSON of f64 for 1,000,000 points; a trial's own page
    /// has its curve in full). NaN is written as `null`.
    pub values: Vec<f32>,
}

impl Curves {
    pub fn push(&mut self, trial: u64, points: impl IntoIterator<Item = (i64, f64)>) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.trials.push(trial);
        for (s, v) in points {
            self.steps.push(s);
            self.values.push(v as f32);
        }
        self.offsets.push(self.steps.len());
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyPage {
    pub study: StudyRow,
    /// Parameter names, in the spec's order.
    pub params: Vec<String>,
    pub trials: Vec<TrialRow>,
    pub curves: Curves,
    pub importance: Vec<Importance>,
    /// How `importance` is computed, shown beside it.
    pub importance_method: &'static str,
}

impl StudyPage {
    /// Fills `importance` from the completed trials.
    pub fn new(
        study: StudyRow,
        params: Vec<String>,
        trials: Vec<TrialRow>,
        curves: Curves,
    ) -> Self {
        let rows: Vec<(Vec<Option<&crate::engine::ParamValue>>, f64)> = trials
            .iter()
            .filter(|t| t.state == "Completed")
            .filter_map(|t| Some((params.iter().map(|p| t.params.get(p)).collect(), t.value?)))
            .collect();
        let importance = importance(&params, &rows);
        StudyPage {
            study,
            params,
            trials,
            curves,
            importance,
            importance_method: IMPORTANCE_METHOD,
        }
    }
}

pub const IMPORTANCE_METHOD: &str = "share of the completed trials' objective ranks explained by \
    each parameter alone (bias-corrected correlation ratio ε², numeric values in min(10, √n) \
    equal-count bins), normalised to sum to 100%";

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConditionRow {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRow {
    pub name: String,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub conditions: Vec<ConditionRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialPage {
    pub study: StudyRow,
    pub trial: TrialRow,
    pub curve: Vec<(i64, f64)>,
    pub conditions: Vec<ConditionRow>,
    pub job: Option<JobRow>,
    pub events: Vec<EventRow>,
}

/// What the events stream (`api/events`) pushes: a study's new row, or a trial's new row and
/// its newest points (the browser merges them by step into the curve it has).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Update {
    Study {
        study: StudyRow,
    },
    Trial {
        namespace: String,
        study: String,
        trial: TrialRow,
        points: Vec<(i64, f64)>,
    },
}
