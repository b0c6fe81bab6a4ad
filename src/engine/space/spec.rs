//! The parameter specs as a Study writes them (`float`, `int`, `categorical`, `when`), and
//! the checks that turn one into a [`Distribution`], naming the [`Rule`] it breaks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::distribution::{Distribution, values_match};
use crate::engine::ParamValue;

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

/// Checks one spec and returns its distribution.
pub(super) fn validate_dist(spec: &ParamSpec) -> Result<Distribution, Rule> {
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
