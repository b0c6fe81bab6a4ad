//! An incrementally maintained index of a study, so that replaying thousands of trials
//! does not rescan every trial on every report. Decisions with and without it are equal.

use std::collections::HashMap;

use crate::engine::{TrialRecord, TrialState};

/// Small integer keys, looked up at every decision: a fast fixed hasher (no DoS concern,
/// the keys are the study's own steps and rungs).
type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Non-NaN values sorted ascending plus the number of NaNs, for one step or rung.
#[derive(Clone, Debug, Default)]
pub struct SortedValues {
    pub sorted: Vec<f64>,
    pub nans: usize,
}

impl SortedValues {
    fn insert(&mut self, v: f64) {
        if v.is_nan() {
            self.nans += 1;
        } else {
            let at = self.sorted.partition_point(|&x| x < v);
            self.sorted.insert(at, v);
        }
    }

    /// Number of values, NaNs included.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.nans
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the pruners need to know about a study, maintained as trials finish.
#[derive(Clone, Debug, Default)]
pub struct StudyIndex {
    /// Number of COMPLETE trials.
    pub completed: usize,
    /// Largest last step of a COMPLETE trial.
    pub max_complete_last_step: Option<i64>,
    /// Raw intermediate values of COMPLETE trials at each step.
    pub by_step: Map<i64, SortedValues>,
    /// Recorded rung values of all trials (successive halving, no brackets).
    pub rungs: Map<u32, SortedValues>,
}

impl StudyIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Call once when a trial reaches a finished state.
    pub fn on_finished(&mut self, trial: &TrialRecord) {
        if trial.state != TrialState::Complete {
            return;
        }
        self.completed += 1;
        if let Some(last) = trial.last_step() {
            self.max_complete_last_step = Some(match self.max_complete_last_step {
                Some(m) if m >= last => m,
                _ => last,
            });
        }
        for (&step, &v) in &trial.intermediate {
            self.by_step.entry(step).or_default().insert(v);
        }
    }

    /// Call when rung values are recorded on a trial.
    pub fn on_rungs<'a>(&mut self, rungs: impl IntoIterator<Item = (&'a u32, &'a f64)>) {
        for (&r, &v) in rungs {
            self.rungs.entry(r).or_default().insert(v);
        }
    }
}
