//! Search space: the `spec.parameters` field of a Study (issue 3).
//!
//! A [`ParamSpec`] is one element of `spec.parameters`, exactly as written in YAML:
//!
//! ```yaml
//! - name: lr
//!   float: {low: 1.0e-4, high: 0.5, log: true}      # optional step (not with log)
//! - name: hidden
//!   int: {low: 16, high: 256, step: 16}             # optional log (not with step > 1)
//! - name: optimizer
//!   categorical: {choices: [adam, sgd, rmsprop]}    # strings, numbers or booleans
//! - name: momentum
//!   float: {low: 0.0, high: 0.99}
//!   when: {optimizer: [sgd, rmsprop]}               # active only for these values
//! ```
//!
//! [`SearchSpace::new`] validates a list of them and names the parameter and the rule it
//! breaks, e.g. `parameters[2] (momentum): when refers to "optim", which is not an earlier
//! parameter`. A `when` may only refer to *earlier* parameters, so a space can never hold a
//! cycle of conditions; activity is decided in declaration order.
//!
//! ## Kubernetes schema
//!
//! `ParamSpec` becomes part of the Study CRD, whose schema must be *structural*: every node
//! has a `type`, no `oneOf`/`anyOf`/`$ref`. Hence `float`/`int`/`categorical` are three
//! optional objects (exactly one is checked when parsing, the CRD adds a CEL rule), and the
//! mixed-type scalars of `choices` and `when` are array items declared as
//! `{x-kubernetes-preserve-unknown-fields: true}` — the one structural exception that admits
//! strings, numbers *and* booleans (`x-kubernetes-int-or-string` would refuse floats and
//! booleans). Parsing then rejects anything that is not a scalar.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::{ParamValue, Params};

/// `float: {low, high, log, step}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FloatSpec {
    pub low: f64,
    pub high: f64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub log: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
}

/// `int: {low, high, step, log}`; `step` defaults to 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntSpec {
    pub low: i64,
    pub high: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub log: bool,
}

/// `categorical: {choices: [...]}`: strings, numbers or booleans (mixed allowed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CategoricalSpec {
    pub choices: Vec<ParamValue>,
}

/// One element of `spec.parameters`. Exactly one of `float`, `int`, `categorical` is set
/// (deserialization refuses anything else and says so).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawParamSpec")]
pub struct ParamSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float: Option<FloatSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int: Option<IntSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical: Option<CategoricalSpec>,
    /// Active only when every named earlier parameter is active and takes one of the values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: BTreeMap<String, Vec<ParamValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawParamSpec {
    name: String,
    #[serde(default)]
    float: Option<FloatSpec>,
    #[serde(default)]
    int: Option<IntSpec>,
    #[serde(default)]
    categorical: Option<CategoricalSpec>,
    #[serde(default)]
    when: BTreeMap<String, Vec<ParamValue>>,
}

impl TryFrom<RawParamSpec> for ParamSpec {
    type Error = String;

    fn try_from(r: RawParamSpec) -> Result<Self, String> {
        let spec = ParamSpec {
            name: r.name,
            float: r.float,
            int: r.int,
            categorical: r.categorical,
            when: r.when,
        };
        let n = spec.kinds_set();
        if n != 1 {
            return Err(format!(
                "parameter {:?}: {}",
                spec.name,
                Rule::DistributionCount(n)
            ));
        }
        Ok(spec)
    }
}

impl ParamSpec {
    fn kinds_set(&self) -> usize {
        usize::from(self.float.is_some())
            + usize::from(self.int.is_some())
            + usize::from(self.categorical.is_some())
    }

    /// A float parameter (convenience for code and tests).
    pub fn float(name: &str, low: f64, high: f64) -> Self {
        Self::bare(
            name,
            Some(FloatSpec {
                low,
                high,
                log: false,
                step: None,
            }),
            None,
            None,
        )
    }

    /// A log-scaled float parameter.
    pub fn log_float(name: &str, low: f64, high: f64) -> Self {
        Self::bare(
            name,
            Some(FloatSpec {
                low,
                high,
                log: true,
                step: None,
            }),
            None,
            None,
        )
    }

    /// A stepped float parameter.
    pub fn stepped_float(name: &str, low: f64, high: f64, step: f64) -> Self {
        Self::bare(
            name,
            Some(FloatSpec {
                low,
                high,
                log: false,
                step: Some(step),
            }),
            None,
            None,
        )
    }

    /// An integer parameter with the given step.
    pub fn int(name: &str, low: i64, high: i64, step: i64) -> Self {
        Self::bare(
            name,
            None,
            Some(IntSpec {
                low,
                high,
                step: Some(step),
                log: false,
            }),
            None,
        )
    }

    /// A log-scaled integer parameter (step 1).
    pub fn log_int(name: &str, low: i64, high: i64) -> Self {
        Self::bare(
            name,
            None,
            Some(IntSpec {
                low,
                high,
                step: None,
                log: true,
            }),
            None,
        )
    }

    /// A categorical parameter.
    pub fn categorical(name: &str, choices: Vec<ParamValue>) -> Self {
        Self::bare(name, None, None, Some(CategoricalSpec { choices }))
    }

    /// Adds a `when` condition: active only if `param` takes one of `values`.
    pub fn when(mut self, param: &str, values: Vec<ParamValue>) -> Self {
        self.when.insert(param.to_string(), values);
        self
    }

    fn bare(
        name: &str,
        float: Option<FloatSpec>,
        int: Option<IntSpec>,
        categorical: Option<CategoricalSpec>,
    ) -> Self {
        ParamSpec {
            name: name.to_string(),
            float,
            int,
            categorical,
            when: BTreeMap::new(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Schema of a scalar of any type (string, number, boolean) that stays structural.
fn any_scalar_schema() -> serde_json::Value {
    serde_json::json!({ "x-kubernetes-preserve-unknown-fields": true })
}

impl JsonSchema for ParamSpec {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("ParamSpec")
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "One tuned parameter: exactly one of float, int or categorical; \
                            optional `when` makes it conditional on earlier parameters.",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "float": {
                    "type": "object",
                    "required": ["low", "high"],
                    "properties": {
                        "low": {"type": "number"},
                        "high": {"type": "number"},
                        "log": {"type": "boolean"},
                        "step": {"type": "number"}
                    }
                },
                "int": {
                    "type": "object",
                    "required": ["low", "high"],
                    "properties": {
                        "low": {"type": "integer", "format": "int64"},
                        "high": {"type": "integer", "format": "int64"},
                        "step": {"type": "integer", "format": "int64"},
                        "log": {"type": "boolean"}
                    }
                },
                "categorical": {
                    "type": "object",
                    "required": ["choices"],
                    "properties": {
                        "choices": {
                            "type": "array",
                            "minItems": 1,
                            "description": "Strings, numbers or booleans.",
                            "items": any_scalar_schema()
                        }
                    }
                },
                "when": {
                    "type": "object",
                    "description": "Earlier parameter name -> values for which this one is active.",
                    "additionalProperties": {
                        "type": "array",
                        "items": any_scalar_schema()
                    }
                }
            }
        })
    }
}

/// A validated distribution, in the form samplers use.
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    Float {
        low: f64,
        high: f64,
        log: bool,
        step: Option<f64>,
    },
    Int {
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    },
    Categorical {
        choices: Vec<ParamValue>,
    },
}

/// Tolerance for "is on the step grid" and "is within bounds" checks of floats.
const REL_TOL: f64 = 1e-9;

/// A float range's bounds widened by the tolerance of "is within bounds" checks.
pub(crate) fn tolerant_bounds(low: f64, high: f64) -> (f64, f64) {
    let tol = REL_TOL * (high - low).abs().max(1.0);
    (low - tol, high + tol)
}

impl Distribution {
    /// Whether `v` is a value of this distribution (numbers compare numerically, so `1` is a
    /// valid value of a float range and `2.0` of an int range).
    pub fn contains(&self, v: &ParamValue) -> bool {
        match self {
            Distribution::Float {
                low, high, step, ..
            } => {
                let Some(x) = as_f64(v) else { return false };
                let (low_tol, high_tol) = tolerant_bounds(*low, *high);
                if !(x >= low_tol && x <= high_tol) {
                    return false;
                }
                match step {
                    None => true,
                    Some(s) => {
                        let k = (x - low) / s;
                        (k - k.round()).abs() <= 1e-6
                    }
                }
            }
            Distribution::Int {
                low, high, step, ..
            } => {
                let Some(i) = as_i64(v) else { return false };
                i >= *low && i <= *high && (i - low) % step == 0
            }
            Distribution::Categorical { choices } => choices.iter().any(|c| values_match(c, v)),
        }
    }

    /// Number of distinct values, when finite (int, stepped float, categorical).
    pub fn cardinality(&self) -> Option<u64> {
        match self {
            Distribution::Float {
                low,
                high,
                step: Some(s),
                ..
            } => Some(((high - low) / s + 1e-9).floor() as u64 + 1),
            Distribution::Float { .. } => None,
            Distribution::Int {
                low, high, step, ..
            } => Some(((*high as i128 - *low as i128) / *step as i128) as u64 + 1),
            Distribution::Categorical { choices } => Some(choices.len() as u64),
        }
    }

    /// The `k`-th value of a finite distribution, in increasing order (`k < cardinality`).
    pub fn nth(&self, k: u64) -> Option<ParamValue> {
        let n = self.cardinality()?;
        if k >= n {
            return None;
        }
        Some(match self {
            Distribution::Float {
                low,
                high,
                step: Some(s),
                ..
            } => ParamValue::Float(clean_float((low + k as f64 * s).min(*high))),
            Distribution::Float { .. } => return None,
            Distribution::Int { low, step, .. } => ParamValue::Int(low + k as i64 * step),
            Distribution::Categorical { choices } => choices[k as usize].clone(),
        })
    }

    /// Index of `v` among the finite values (inverse of [`Distribution::nth`]).
    pub fn index_of(&self, v: &ParamValue) -> Option<u64> {
        if !self.contains(v) {
            return None;
        }
        match self {
            Distribution::Float {
                low, step: Some(s), ..
            } => Some(((as_f64(v)? - low) / s).round().max(0.0) as u64),
            Distribution::Float { .. } => None,
            Distribution::Int { low, step, .. } => Some(((as_i64(v)? - low) / step) as u64),
            Distribution::Categorical { choices } => choices
                .iter()
                .position(|c| values_match(c, v))
                .map(|p| p as u64),
        }
    }

    /// Maps `u ∈ [0, 1)` uniformly onto the distribution as Optuna's `RandomSampler` does:
    /// log ranges uniformly in log space; stepped and integer ranges uniformly over
    /// `[low - step/2, high + step/2]` then rounded to the grid (so every value has equal
    /// mass, or equal log-mass); categorical by index.
    pub fn from_unit(&self, u: f64) -> ParamValue {
        let u = u.clamp(0.0, 1.0);
        match self {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => {
                let (lo, hi) = match step {
                    Some(s) => (low - s / 2.0, high + s / 2.0),
                    None => (*low, *high),
                };
                let x = if *log {
                    (lo.ln() + u * (hi.ln() - lo.ln())).exp()
                } else {
                    lo + u * (hi - lo)
                };
                self.from_internal(x)
            }
            Distribution::Int {
                low,
                high,
                step,
                log,
            } => {
                let half = *step as f64 / 2.0;
                let (lo, hi) = (*low as f64 - half, *high as f64 + half);
                let x = if *log {
                    (lo.ln() + u * (hi.ln() - lo.ln())).exp()
                } else {
                    lo + u * (hi - lo)
                };
                self.from_internal(x)
            }
            Distribution::Categorical { choices } => {
                let k = ((u * choices.len() as f64) as usize).min(choices.len() - 1);
                choices[k].clone()
            }
        }
    }

    /// The sampler-internal number of a value: the value itself for numbers (as `f64`), the
    /// index for categoricals. `None` when `v` is not in the distribution.
    pub fn to_internal(&self, v: &ParamValue) -> Option<f64> {
        if !self.contains(v) {
            return None;
        }
        match self {
            Distribution::Float { low, high, .. } => Some(as_f64(v)?.clamp(*low, *high)),
            Distribution::Int { .. } => Some(as_i64(v)? as f64),
            Distribution::Categorical { .. } => self.index_of(v).map(|k| k as f64),
        }
    }

    /// Inverse of [`Distribution::to_internal`]: rounds to the step grid (ints to integers),
    /// clamps to the bounds, picks the category by (rounded, clamped) index.
    pub fn from_internal(&self, x: f64) -> ParamValue {
        let x = if x.is_nan() { 0.0 } else { x };
        match self {
            Distribution::Float {
                low, high, step, ..
            } => match step {
                None => ParamValue::Float(x.clamp(*low, *high)),
                Some(s) => {
                    let n = ((high - low) / s + 1e-9).floor();
                    let k = ((x - low) / s).round().clamp(0.0, n);
                    ParamValue::Float(clean_float((low + k * s).min(*high)))
                }
            },
            Distribution::Int {
                low, high, step, ..
            } => {
                let n = ((*high as i128 - *low as i128) / *step as i128) as f64;
                let k = ((x - *low as f64) / *step as f64).round().clamp(0.0, n);
                ParamValue::Int(low + k as i64 * step)
            }
            Distribution::Categorical { choices } => {
                let k = x.round().clamp(0.0, (choices.len() - 1) as f64) as usize;
                choices[k].clone()
            }
        }
    }

    /// True for log-scaled numeric distributions.
    pub fn is_log(&self) -> bool {
        matches!(
            self,
            Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. }
        )
    }
}

/// Rounds away binary noise such as `0.30000000000000004` (12 significant digits).
fn clean_float(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(11 - mag);
    if !scale.is_finite() || scale == 0.0 {
        return x;
    }
    let r = (x * scale).round() / scale;
    if r.is_finite() { r } else { x }
}

fn as_f64(v: &ParamValue) -> Option<f64> {
    match v {
        ParamValue::Float(x) if x.is_finite() => Some(*x),
        ParamValue::Int(i) => Some(*i as f64),
        _ => None,
    }
}

fn as_i64(v: &ParamValue) -> Option<i64> {
    match v {
        ParamValue::Int(i) => Some(*i),
        ParamValue::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 => {
            Some(*x as i64)
        }
        _ => None,
    }
}

/// Value equality for choices and `when`: numbers compare numerically (`1 == 1.0`, as a
/// Kubernetes round trip may turn one into the other), everything else exactly.
pub fn values_match(a: &ParamValue, b: &ParamValue) -> bool {
    match (a, b) {
        (ParamValue::Bool(x), ParamValue::Bool(y)) => x == y,
        (ParamValue::Str(x), ParamValue::Str(y)) => x == y,
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// A validated parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub dist: Distribution,
    /// Conditions as (index of an earlier parameter, accepted values); all must hold.
    pub when: Vec<(usize, Vec<ParamValue>)>,
}

/// The rule a parameter breaks.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rule {
    #[error("name is empty")]
    EmptyName,
    #[error("duplicate name, already used by parameters[{0}]")]
    DuplicateName(usize),
    #[error("exactly one of float, int or categorical must be set, found {0}")]
    DistributionCount(usize),
    #[error("low and high must be finite numbers (low = {low}, high = {high})")]
    NonFinite { low: f64, high: f64 },
    #[error("low ({low}) must be less than high ({high})")]
    LowNotBelowHigh { low: String, high: String },
    #[error("log scale needs low > 0, got low = {0}")]
    LogNeedsPositiveLow(String),
    #[error("step {step} does not fit the range [{low}, {high}]: {why}")]
    BadStep {
        step: String,
        low: String,
        high: String,
        why: &'static str,
    },
    #[error("log cannot be combined with a step (other than 1 for int)")]
    LogWithStep,
    #[error("choices is empty")]
    EmptyChoices,
    #[error("choice {0} is listed twice")]
    DuplicateChoice(ParamValue),
    #[error("when refers to \"{0}\", which is the parameter itself (a cycle)")]
    WhenSelf(String),
    #[error("when refers to \"{0}\", which is not an earlier parameter")]
    WhenNotEarlier(String),
    #[error("when lists no values for \"{0}\"")]
    WhenNoValues(String),
    #[error("when value {value} is never taken by \"{param}\"")]
    WhenImpossibleValue { param: String, value: ParamValue },
}

/// Why a list of [`ParamSpec`]s is not a valid search space.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpaceError {
    #[error("parameters: the search space is empty (at least one parameter is needed)")]
    Empty,
    #[error("parameters[{index}] ({name}): {rule}")]
    Invalid {
        index: usize,
        name: String,
        rule: Rule,
    },
}

/// A validated search space: parameters in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpace {
    specs: Vec<ParamSpec>,
    params: Vec<Param>,
}

impl SearchSpace {
    /// Validates `specs` (see the module docs for the rules).
    pub fn new(specs: Vec<ParamSpec>) -> Result<SearchSpace, SpaceError> {
        if specs.is_empty() {
            return Err(SpaceError::Empty);
        }
        let mut params: Vec<Param> = Vec::with_capacity(specs.len());
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, spec) in specs.iter().enumerate() {
            let fail = |rule: Rule| SpaceError::Invalid {
                index,
                name: spec.name.clone(),
                rule,
            };
            if spec.name.trim().is_empty() {
                return Err(fail(Rule::EmptyName));
            }
            if let Some(&first) = by_name.get(spec.name.as_str()) {
                return Err(fail(Rule::DuplicateName(first)));
            }
            let dist = validate_dist(spec).map_err(fail)?;
            let mut when = Vec::with_capacity(spec.when.len());
            for (other, values) in &spec.when {
                if *other == spec.name {
                    return Err(fail(Rule::WhenSelf(other.clone())));
                }
                let Some(&j) = by_name.get(other.as_str()) else {
                    return Err(fail(Rule::WhenNotEarlier(other.clone())));
                };
                if values.is_empty() {
                    return Err(fail(Rule::WhenNoValues(other.clone())));
                }
                for v in values {
                    if !params[j].dist.contains(v) {
                        return Err(fail(Rule::WhenImpossibleValue {
                            param: other.clone(),
                            value: v.clone(),
                        }));
                    }
                }
                when.push((j, values.clone()));
            }
            by_name.insert(spec.name.as_str(), index);
            params.push(Param {
                name: spec.name.clone(),
                dist,
                when,
            });
        }
        Ok(SearchSpace { specs, params })
    }

    /// The specs this space was built from (for serialization).
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// The validated parameters, in declaration order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Position of a parameter by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// True when parameter `i` carries a `when`.
    pub fn is_conditional(&self, i: usize) -> bool {
        !self.params[i].when.is_empty()
    }

    /// Whether parameter `i` is active given the values chosen so far (`chosen` holds
    /// earlier parameters; an absent one is inactive, so dependants are inactive too).
    pub fn is_active(&self, i: usize, chosen: &Params) -> bool {
        self.params[i].when.iter().all(|(j, values)| {
            chosen
                .get(&self.params[*j].name)
                .is_some_and(|v| values.iter().any(|w| values_match(w, v)))
        })
    }

    /// Builds a trial's params in declaration order: `pick(i, param)` is asked only for the
    /// parameters that are active given the earlier picks.
    pub fn assemble<E>(
        &self,
        mut pick: impl FnMut(usize, &Param, &Params) -> Result<ParamValue, E>,
    ) -> Result<Params, E> {
        let mut out = Params::new();
        for (i, p) in self.params.iter().enumerate() {
            if self.is_active(i, &out) {
                let v = pick(i, p, &out)?;
                out.insert(p.name.clone(), v);
            }
        }
        Ok(out)
    }

    /// Checks that `params` is a point of this space: every active parameter present and
    /// inside its distribution, no inactive or unknown parameter. The error says why.
    pub fn contains(&self, params: &Params) -> Result<(), String> {
        let known: BTreeSet<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        if let Some(unknown) = params.keys().find(|k| !known.contains(k.as_str())) {
            return Err(format!("parameter {unknown:?} is not in the search space"));
        }
        for (i, p) in self.params.iter().enumerate() {
            let active = self.is_active(i, params);
            match (active, params.get(&p.name)) {
                (true, None) => {
                    return Err(format!("parameter {:?} is active but missing", p.name));
                }
                (true, Some(v)) if !p.dist.contains(v) => {
                    return Err(format!(
                        "parameter {:?} = {v} is outside {}",
                        p.name,
                        DistDisplay(&p.dist)
                    ));
                }
                (false, Some(v)) => {
                    return Err(format!(
                        "parameter {:?} = {v} is set but inactive under its `when`",
                        p.name
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

struct DistDisplay<'a>(&'a Distribution);

impl fmt::Display for DistDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => {
                write!(f, "float [{low}, {high}]")?;
                if *log {
                    f.write_str(" log")?;
                }
                if let Some(s) = step {
                    write!(f, " step {s}")?;
                }
                Ok(())
            }
            Distribution::Int {
                low,
                high,
                step,
                log,
            } => {
                write!(f, "int [{low}, {high}] step {step}")?;
                if *log {
                    f.write_str(" log")?;
                }
                Ok(())
            }
            Distribution::Categorical { choices } => {
                f.write_str("choices [")?;
                for (k, c) in choices.iter().enumerate() {
                    if k > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("]")
            }
        }
    }
}

fn validate_dist(spec: &ParamSpec) -> Result<Distribution, Rule> {
    let n = spec.kinds_set();
    if n != 1 {
        return Err(Rule::DistributionCount(n));
    }
    if let Some(fs) = &spec.float {
        let FloatSpec {
            low,
            high,
            log,
            step,
        } = *fs;
        if !low.is_finite() || !high.is_finite() {
            return Err(Rule::NonFinite { low, high });
        }
        if low >= high {
            return Err(Rule::LowNotBelowHigh {
                low: low.to_string(),
                high: high.to_string(),
            });
        }
        if log && low <= 0.0 {
            return Err(Rule::LogNeedsPositiveLow(low.to_string()));
        }
        if let Some(s) = step {
            if log {
                return Err(Rule::LogWithStep);
            }
            let bad = |why| Rule::BadStep {
                step: s.to_string(),
                low: low.to_string(),
                high: high.to_string(),
                why,
            };
            if !(s.is_finite() && s > 0.0) {
                return Err(bad("it must be a positive number"));
            }
            let k = (high - low) / s;
            if k < 1.0 - 1e-9 {
                return Err(bad("it is larger than high - low"));
            }
            if (k - k.round()).abs() > 1e-6 {
                return Err(bad("high - low is not a multiple of it"));
            }
        }
        return Ok(Distribution::Float {
            low,
            high,
            log,
            step,
        });
    }
    if let Some(is) = &spec.int {
        let IntSpec {
            low,
            high,
            step,
            log,
        } = *is;
        if low >= high {
            return Err(Rule::LowNotBelowHigh {
                low: low.to_string(),
                high: high.to_string(),
            });
        }
        if log && low <= 0 {
            return Err(Rule::LogNeedsPositiveLow(low.to_string()));
        }
        let step = step.unwrap_or(1);
        if log && step != 1 {
            return Err(Rule::LogWithStep);
        }
        let bad = |why| Rule::BadStep {
            step: step.to_string(),
            low: low.to_string(),
            high: high.to_string(),
            why,
        };
        if step <= 0 {
            return Err(bad("it must be a positive integer"));
        }
        let range = high as i128 - low as i128;
        if (step as i128) > range {
            return Err(bad("it is larger than high - low"));
        }
        if range % step as i128 != 0 {
            return Err(bad("high - low is not a multiple of it"));
        }
        return Ok(Distribution::Int {
            low,
            high,
            step,
            log,
        });
    }
    let choices = spec
        .categorical
        .as_ref()
        .map(|c| c.choices.clone())
        .unwrap_or_default();
    if choices.is_empty() {
        return Err(Rule::EmptyChoices);
    }
    for (k, c) in choices.iter().enumerate() {
        if let ParamValue::Float(x) = c
            && !x.is_finite()
        {
            return Err(Rule::NonFinite { low: *x, high: *x });
        }
        if choices[..k].iter().any(|d| values_match(c, d)) {
            return Err(Rule::DuplicateChoice(c.clone()));
        }
    }
    Ok(Distribution::Categorical { choices })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> ParamValue {
        ParamValue::Str(x.to_string())
    }

    fn issue_space() -> Vec<ParamSpec> {
        serde_yaml::from_str(
            r#"
- name: lr
  float: {low: 1.0e-4, high: 0.5, log: true}
- name: hidden
  int: {low: 16, high: 256, step: 16}
- name: optimizer
  categorical: {choices: [adam, sgd, rmsprop]}
- name: momentum
  float: {low: 0.0, high: 0.99}
  when: {optimizer: [sgd, rmsprop]}
"#,
        )
        .unwrap()
    }

    fn err(specs: Vec<ParamSpec>) -> String {
        SearchSpace::new(specs).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_issue_example_and_round_trips() {
        let specs = issue_space();
        assert_eq!(specs[0].float.as_ref().map(|f| f.log), Some(true));
        assert_eq!(specs[3].when["optimizer"], vec![s("sgd"), s("rmsprop")]);
        let json = serde_json::to_string(&specs).unwrap();
        let back: Vec<ParamSpec> = serde_json::from_str(&json).unwrap();
        assert_eq!(specs, back);
        let space = SearchSpace::new(specs).unwrap();
        assert_eq!(space.len(), 4);
        assert!(space.is_conditional(3));
    }

    #[test]
    fn exactly_one_kind_at_parse() {
        let e = serde_yaml::from_str::<ParamSpec>(
            "{name: a, float: {low: 0, high: 1}, int: {low: 0, high: 1}}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("exactly one of float, int or categorical"),
            "{e}"
        );
        let e = serde_yaml::from_str::<ParamSpec>("{name: a}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("found 0"), "{e}");
        assert!(serde_yaml::from_str::<ParamSpec>("{name: a, flaot: {low: 0, high: 1}}").is_err());
        assert!(
            serde_yaml::from_str::<ParamSpec>("{name: a, categorical: {choices: [[1]]}}").is_err()
        );
    }

    #[test]
    fn mixed_choices_keep_their_types() {
        let p: ParamSpec =
            serde_yaml::from_str("{name: c, categorical: {choices: [1, 2.5, true, x]}}").unwrap();
        let c = p.categorical.unwrap().choices;
        assert_eq!(
            c,
            vec![
                ParamValue::Int(1),
                ParamValue::Float(2.5),
                ParamValue::Bool(true),
                s("x")
            ]
        );
        assert_eq!(
            c.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            ["1", "2.5", "true", "x"]
        );
    }

    #[test]
    fn named_errors() {
        assert_eq!(
            err(vec![]),
            "parameters: the search space is empty (at least one parameter is needed)"
        );
        assert_eq!(
            err(vec![
                ParamSpec::float("a", 0.0, 1.0),
                ParamSpec::float("a", 0.0, 1.0)
            ]),
            "parameters[1] (a): duplicate name, already used by parameters[0]"
        );
        assert_eq!(
            err(vec![ParamSpec::float("a", 1.0, 1.0)]),
            "parameters[0] (a): low (1) must be less than high (1)"
        );
        assert_eq!(
            err(vec![ParamSpec::int("a", 5, 2, 1)]),
            "parameters[0] (a): low (5) must be less than high (2)"
        );
        assert_eq!(
            err(vec![ParamSpec::log_float("a", 0.0, 1.0)]),
            "parameters[0] (a): log scale needs low > 0, got low = 0"
        );
        assert_eq!(
            err(vec![ParamSpec::log_int("a", -1, 4)]),
            "parameters[0] (a): log scale needs low > 0, got low = -1"
        );
        assert!(
            err(vec![ParamSpec::stepped_float("a", 0.0, 1.0, 0.3)])
                .contains("high - low is not a multiple")
        );
        assert!(
            err(vec![ParamSpec::stepped_float("a", 0.0, 1.0, 2.0)])
                .contains("larger than high - low")
        );
        assert!(
            err(vec![ParamSpec::int("a", 0, 10, 3)])
                .contains("step 3 does not fit the range [0, 10]")
        );
        assert!(err(vec![ParamSpec::int("a", 0, 10, 0)]).contains("positive"));
        let mut lf = ParamSpec::log_float("a", 1.0, 2.0);
        lf.float.as_mut().unwrap().step = Some(0.5);
        assert!(err(vec![lf]).contains("log cannot be combined"));
        assert_eq!(
            err(vec![ParamSpec::categorical("a", vec![])]),
            "parameters[0] (a): choices is empty"
        );
        assert!(
            err(vec![ParamSpec::categorical(
                "a",
                vec![ParamValue::Int(1), ParamValue::Float(1.0)]
            )])
            .contains("listed twice")
        );
        let later = vec![
            ParamSpec::float("momentum", 0.0, 1.0).when("optim", vec![s("sgd")]),
            ParamSpec::categorical("optim", vec![s("sgd")]),
        ];
        assert_eq!(
            err(later),
            "parameters[0] (momentum): when refers to \"optim\", which is not an earlier parameter"
        );
        let unknown = vec![
            ParamSpec::categorical("optimizer", vec![s("sgd")]),
            ParamSpec::float("x", 0.0, 1.0),
            ParamSpec::float("momentum", 0.0, 1.0).when("optim", vec![s("sgd")]),
        ];
        assert_eq!(
            err(unknown),
            "parameters[2] (momentum): when refers to \"optim\", which is not an earlier parameter"
        );
        let cycle = vec![ParamSpec::float("a", 0.0, 1.0).when("a", vec![ParamValue::Float(0.5)])];
        assert!(err(cycle).contains("the parameter itself (a cycle)"));
        let impossible = vec![
            ParamSpec::categorical("o", vec![s("sgd")]),
            ParamSpec::float("m", 0.0, 1.0).when("o", vec![s("adam")]),
        ];
        assert!(err(impossible).contains("when value adam is never taken by \"o\""));
        let novalues = vec![
            ParamSpec::categorical("o", vec![s("sgd")]),
            ParamSpec::float("m", 0.0, 1.0).when("o", vec![]),
        ];
        assert!(err(novalues).contains("no values"));
    }

    #[test]
    fn transforms_respect_bounds_steps_and_logs() {
        let space = SearchSpace::new(vec![
            ParamSpec::log_float("lr", 1e-4, 0.5),
            ParamSpec::int("h", 16, 256, 16),
            ParamSpec::stepped_float("d", 0.0, 1.0, 0.1),
            ParamSpec::log_int("n", 1, 1000),
        ])
        .unwrap();
        for k in 0..=1000 {
            let u = k as f64 / 1000.0;
            for p in space.params() {
                let v = p.dist.from_unit(u);
                assert!(p.dist.contains(&v), "{} {v} at u={u}", p.name);
                let x = p.dist.to_internal(&v).unwrap();
                assert_eq!(p.dist.from_internal(x), v);
            }
        }
        let lr = &space.params()[0].dist;
        // log-uniform: the median of u maps to the geometric mean.
        let mid = lr.from_unit(0.5);
        let ParamValue::Float(m) = mid else { panic!() };
        assert!((m - (1e-4f64 * 0.5).sqrt()).abs() < 1e-9);
        let h = &space.params()[1].dist;
        assert_eq!(h.from_internal(39.0), ParamValue::Int(32));
        assert_eq!(h.from_internal(41.0), ParamValue::Int(48));
        assert_eq!(h.from_internal(1e9), ParamValue::Int(256));
        assert_eq!(h.from_internal(-5.0), ParamValue::Int(16));
        assert_eq!(h.from_unit(0.0), ParamValue::Int(16));
        assert_eq!(h.from_unit(1.0), ParamValue::Int(256));
        assert!(!h.contains(&ParamValue::Int(17)));
        assert!(h.contains(&ParamValue::Float(32.0)));
        let d = &space.params()[2].dist;
        assert_eq!(d.from_internal(0.3), ParamValue::Float(0.3));
        assert_eq!(d.cardinality(), Some(11));
        assert_eq!(d.nth(10), Some(ParamValue::Float(1.0)));
        assert!(d.contains(&ParamValue::Float(0.30000000000000004)));
        assert!(!d.contains(&ParamValue::Float(0.35)));
        // every step value of an int range gets equal mass under from_unit.
        let mut counts = [0u32; 16];
        for k in 0..16000 {
            if let ParamValue::Int(i) = h.from_unit((k as f64 + 0.5) / 16000.0) {
                counts[((i - 16) / 16) as usize] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c == 1000), "{counts:?}");
    }

    #[test]
    fn conditional_activation_and_contains() {
        let space = SearchSpace::new(issue_space()).unwrap();
        let mut p = Params::new();
        p.insert("lr".into(), ParamValue::Float(0.01));
        p.insert("hidden".into(), ParamValue::Int(32));
        p.insert("optimizer".into(), s("adam"));
        assert!(!space.is_active(3, &p));
        assert_eq!(space.contains(&p), Ok(()));
        p.insert("momentum".into(), ParamValue::Float(0.9));
        assert!(space.contains(&p).unwrap_err().contains("inactive"));
        p.insert("optimizer".into(), s("sgd"));
        assert!(space.is_active(3, &p));
        assert_eq!(space.contains(&p), Ok(()));
        p.remove("momentum");
        assert!(
            space
                .contains(&p)
                .unwrap_err()
                .contains("active but missing")
        );
        p.insert("momentum".into(), ParamValue::Float(1.5));
        assert!(
            space
                .contains(&p)
                .unwrap_err()
                .contains("outside float [0, 0.99]")
        );
        p.insert("momentum".into(), ParamValue::Float(0.5));
        p.insert("extra".into(), ParamValue::Int(1));
        assert!(
            space
                .contains(&p)
                .unwrap_err()
                .contains("not in the search space")
        );
    }

    #[test]
    fn chained_conditions() {
        let space = SearchSpace::new(vec![
            ParamSpec::categorical("a", vec![ParamValue::Bool(true), ParamValue::Bool(false)]),
            ParamSpec::int("b", 1, 3, 1).when("a", vec![ParamValue::Bool(true)]),
            ParamSpec::float("c", 0.0, 1.0).when("b", vec![ParamValue::Int(2)]),
        ])
        .unwrap();
        let p: Params = [("a".to_string(), ParamValue::Bool(false))].into();
        assert!(!space.is_active(1, &p));
        assert!(
            !space.is_active(2, &p),
            "dependant of an inactive parameter is inactive"
        );
        let p: Params = [
            ("a".to_string(), ParamValue::Bool(true)),
            ("b".to_string(), ParamValue::Float(2.0)),
        ]
        .into();
        assert!(space.is_active(2, &p), "numbers compare numerically");
    }

    #[test]
    fn schema_is_structural() {
        let v = serde_json::to_value(schemars::schema_for!(ParamSpec)).unwrap();
        let text = v.to_string();
        for bad in ["oneOf", "anyOf", "allOf", "$ref", "\"null\""] {
            assert!(!text.contains(bad), "{bad} in {text}");
        }
        assert_eq!(
            v["properties"]["categorical"]["properties"]["choices"]["items"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            v["properties"]["when"]["additionalProperties"]["type"],
            "array"
        );
    }
}
