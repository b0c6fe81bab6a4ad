//! Distributions in the form samplers use: bounds, steps, log scale and choices, with the
//! conversions to and from Optuna's internal representation (numbers as `f64`, choices by
//! index) and the containment checks.

use std::fmt;

use crate::engine::ParamValue;

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

pub(super) struct DistDisplay<'a>(pub(super) &'a Distribution);

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
