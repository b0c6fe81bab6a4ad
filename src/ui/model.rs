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
    /// Waiting for quota (Kueue) or requeued after a preemption; 0 for local runs.
    pub queued: u32,
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
    /// `Pending`, `Queued`, `Running`, `Completed`, `Pruned`, `Failed`.
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
/// `offsets[i]..offsets[i + 1]` of `steps`/`values`. Sent apart from the page, as binary
/// ([`Curves::encode`]): 10,000 × 100 points are 6 MB the browser views as typed arrays
/// without parsing, where JSON was twice the bytes and most of the page's time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    pub trials: Vec<u64>,
    pub offsets: Vec<usize>,
    pub steps: Vec<i64>,
    /// At plot precision (a trial's own page has its curve in full).
    pub values: Vec<f32>,
}

/// At most this many points of one trial in the study page's curves (plus its last point): the
/// plot is a few hundred pixels wide, and 10,000 trials of 5,000 steps would otherwise be 400 MB.
/// A trial's own page has every point.
pub const OVERVIEW_POINTS: usize = 300;

impl Curves {
    /// Adds `trial`'s curve, thinned to every k-th point when longer than [`OVERVIEW_POINTS`]
    /// (the last point always kept: where a pruned trial stopped).
    pub fn push(&mut self, trial: u64, points: &[(i64, f64)]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.trials.push(trial);
        let n = points.len();
        let stride = n.div_ceil(OVERVIEW_POINTS).max(1);
        for (i, &(s, v)) in points.iter().enumerate() {
            if i % stride == 0 || i + 1 == n {
                self.steps.push(s);
                self.values.push(v as f32);
            }
        }
        self.offsets.push(self.steps.len());
    }

    /// Little-endian, each array aligned for a typed-array view (ui/src/app.js `decodeCurves`):
    ///
    /// ```text
    /// u32 n (trials), u32 m (points), u32 wide (1: steps are f64, else i32), u32 0
    /// f64 trials[n]          (trial numbers, exact in JavaScript)
    /// f64 steps[m]           only when wide
    /// u32 offsets[n + 1]
    /// i32 steps[m]           only when not wide
    /// f32 values[m]          (NaN as NaN)
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let (n, m) = (self.trials.len(), self.steps.len());
        // Steps are small counts in practice; a trainer reporting e.g. samples seen gets f64.
        let wide = self.steps.iter().any(|&s| i32::try_from(s).is_err());
        let mut out = Vec::with_capacity(16 + 8 * n + 4 * (n + 1) + if wide { 12 } else { 8 } * m);
        for x in [n as u32, m as u32, wide as u32, 0] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for &t in &self.trials {
            out.extend_from_slice(&(t as f64).to_le_bytes());
        }
        if wide {
            for &s in &self.steps {
                out.extend_from_slice(&(s as f64).to_le_bytes());
            }
        }
        if n > 0 {
            for &o in &self.offsets {
                out.extend_from_slice(&(o as u32).to_le_bytes());
            }
        } else {
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        if !wide {
            for &s in &self.steps {
                out.extend_from_slice(&(s as i32).to_le_bytes());
            }
        }
        for &v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyPage {
    pub study: StudyRow,
    /// Parameter names, in the spec's order.
    pub params: Vec<String>,
    pub trials: Vec<TrialRow>,
    pub importance: Vec<Importance>,
    /// How `importance` is computed, shown beside it.
    pub importance_method: &'static str,
}

impl StudyPage {
    /// Fills `importance` from the completed trials.
    pub fn new(study: StudyRow, params: Vec<String>, trials: Vec<TrialRow>) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_curves_are_thinned_for_the_overview_keeping_the_end() {
        let mut c = Curves::default();
        c.push(0, &(0..100).map(|s| (s, s as f64)).collect::<Vec<_>>());
        c.push(1, &(0..1001).map(|s| (s, s as f64)).collect::<Vec<_>>());
        assert_eq!(c.offsets[1], 100, "short curves whole");
        let long = &c.steps[c.offsets[1]..c.offsets[2]];
        assert!(long.len() <= OVERVIEW_POINTS + 1, "{}", long.len());
        assert_eq!((long[0], long[1], *long.last().unwrap()), (0, 4, 1000));
    }
}
