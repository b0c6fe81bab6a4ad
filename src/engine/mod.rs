//! The pure engine: trials, studies, search spaces, samplers and pruners.
//!
//! Nothing in here performs I/O, awaits, reads a clock or keeps global state, so the
//! controller, the local runner and `lopper replay` all decide exactly alike.

pub mod budget;
pub mod importance;
pub mod planner;
pub mod policy;
pub mod pruners;
pub mod replay;
pub mod samplers;
pub mod space;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether the objective is minimised or maximised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

impl Direction {
    /// True when `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }
}

/// Lifecycle state of a trial, as Optuna's `TrialState` (WAITING folded into Running).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Failed,
}

impl TrialState {
    /// The state's name as serialized (`running`, `complete`, `pruned`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, TrialState::Running)
    }
}

/// A typed parameter value. Numbers stay numbers; `Display` renders it for templating.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

/// A trial's active parameters by name.
pub type Params = BTreeMap<String, ParamValue>;

/// Everything the engine knows about one trial.
///
/// `rungs` holds successive halving's recorded value per rung (Optuna keeps these in the
/// trial's system attributes); it is persisted with the trial so a restart decides alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialRecord {
    pub number: u64,
    pub state: TrialState,
    #[serde(default)]
    pub params: Params,
    /// Intermediate values by step; NaN is a legitimate reported value.
    #[serde(default)]
    pub intermediate: BTreeMap<i64, f64>,
    /// Final objective (complete) or last intermediate value (pruned).
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub rungs: BTreeMap<u32, f64>,
}

impl TrialRecord {
    pub fn new(number: u64) -> Self {
        TrialRecord {
            number,
            state: TrialState::Running,
            params: Params::new(),
            intermediate: BTreeMap::new(),
            value: None,
            rungs: BTreeMap::new(),
        }
    }

    /// Records an intermediate value. As in Optuna, a second report of a step is ignored;
    /// returns whether the value was recorded.
    pub fn report(&mut self, step: i64, value: f64) -> bool {
        if self.intermediate.contains_key(&step) {
            return false;
        }
        self.intermediate.insert(step, value);
        true
    }

    /// The largest reported step, if any.
    pub fn last_step(&self) -> Option<i64> {
        self.intermediate.keys().next_back().copied()
    }

    /// The value reported at the largest step, if any.
    pub fn last_value(&self) -> Option<f64> {
        self.intermediate.values().next_back().copied()
    }
}

/// Values a pruner resolves once per study (Optuna caches them on the pruner object);
/// persisted in the study's status so a restarted operator resolves nothing twice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrunerState {
    /// Successive halving's `auto` min resource, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resource: Option<i64>,
    /// Hyperband's `auto` max resource, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resource: Option<i64>,
}

/// A read-only view of a study: its name, direction and every trial (the one being
/// decided included, in whatever state the caller last stored it).
#[derive(Clone, Copy, Debug)]
pub struct StudyView<'a> {
    pub name: &'a str,
    pub direction: Direction,
    pub trials: &'a [TrialRecord],
}
