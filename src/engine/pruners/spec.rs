//! The pruner spec: the `spec.pruner` field of a Study, one key naming the pruner,
//! camelCase parameters, Optuna's defaults. Each pruner's file owns its parameters, their
//! defaults and checks ([`PrunerParams`]); this file is the tagged enum that dispatches to
//! them. Parsing checks shape and types (naming the field path on error);
//! [`PrunerSpec::validate`] checks every rule Optuna's constructors enforce; [`build`]
//! turns a valid spec into a [`Pruner`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::Pruner;
use super::none::NopPruner;

pub use super::asha::AshaSpec;
pub use super::hyperband::HyperbandSpec;
pub use super::median::MedianSpec;
pub use super::patient::PatientSpec;
pub use super::percentile::{Gate, PercentileSpec};
pub use super::successive_halving::SuccessiveHalvingSpec;
pub use super::threshold::ThresholdSpec;
pub use super::wilcoxon::WilcoxonSpec;

/// A spec error; its Display names the field path and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: unknown field `{field}`, expected one of {expected}")]
    UnknownField {
        path: String,
        field: String,
        expected: String,
    },
    #[error("{path}: missing required field `{field}`")]
    Missing { path: String, field: String },
}

pub(super) fn invalid(path: &str, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

/// `{p}.{field}` must be at least `min`.
pub(super) fn at_least(p: &str, field: &str, v: i64, min: i64) -> Result<(), SpecError> {
    if v < min {
        Err(invalid(
            &format!("{p}.{field}"),
            format!("must be at least {min}, got {v}"),
        ))
    } else {
        Ok(())
    }
}

/// `auto` or a positive integer resource (steps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resource {
    #[default]
    Auto,
    Steps(i64),
}

impl Resource {
    /// `None` for `auto`.
    pub fn steps(self) -> Option<i64> {
        match self {
            Resource::Auto => None,
            Resource::Steps(n) => Some(n),
        }
    }

    pub(super) fn to_value(self) -> Value {
        match self {
            Resource::Auto => json!("auto"),
            Resource::Steps(n) => json!(n),
        }
    }
}

/// One pruner's parameters: its key in the spec, Optuna's class name, parsing (errors
/// naming the field), the explicit form, Optuna's constructor checks, and the pruner.
pub(crate) trait PrunerParams: Sized {
    const KEY: &str;
    const NAME: &str;
    fn parse(fields: &Fields<'_>) -> Result<Self, SpecError>;
    /// Every parameter explicit.
    fn to_value(&self) -> Value;
    /// `p` is the path of this pruner's object, e.g. `pruner.median`.
    fn validate(&self, p: &str) -> Result<(), SpecError>;
    /// The pruner, from parameters that passed [`PrunerParams::validate`].
    fn build(&self) -> Box<dyn Pruner>;
}

/// Which pruner a study uses, with its parameters (exactly one key in YAML/JSON).
#[derive(Clone, Debug, PartialEq)]
pub enum PrunerSpec {
    Median(MedianSpec),
    Percentile(PercentileSpec),
    SuccessiveHalving(SuccessiveHalvingSpec),
    Hyperband(HyperbandSpec),
    Threshold(ThresholdSpec),
    Patient(PatientSpec),
    Wilcoxon(WilcoxonSpec),
    /// The budget-aware ASHA planner (ours, no Optuna counterpart).
    Asha(AshaSpec),
    /// `none: {}` — never prune.
    Nop,
}

/// The spec's keys, as error messages list them.
pub const KEYS: &str =
    "median, percentile, successiveHalving, hyperband, threshold, patient, wilcoxon, asha, none";

/// `$body` with `$s` bound to the variant's parameters (`PrunerParams`), or `$nop`.
macro_rules! dispatch {
    ($spec:expr, $s:ident => $body:expr, none => $nop:expr) => {
        match $spec {
            PrunerSpec::Median($s) => $body,
            PrunerSpec::Percentile($s) => $body,
            PrunerSpec::SuccessiveHalving($s) => $body,
            PrunerSpec::Hyperband($s) => $body,
            PrunerSpec::Threshold($s) => $body,
            PrunerSpec::Patient($s) => $body,
            PrunerSpec::Wilcoxon($s) => $body,
            PrunerSpec::Asha($s) => $body,
            PrunerSpec::Nop => $nop,
        }
    };
}

/// The variant's `PrunerParams` constant.
fn key_of<P: PrunerParams>(_: &P) -> &'static str {
    P::KEY
}

fn name_of<P: PrunerParams>(_: &P) -> &'static str {
    P::NAME
}

impl PrunerSpec {
    /// The spec's key (`median`, `successiveHalving`, ...).
    pub fn key(&self) -> &'static str {
        dispatch!(self, s => key_of(s), none => "none")
    }

    /// Optuna's class name of the pruner (`MedianPruner`, `SuccessiveHalvingPruner`, ...).
    pub fn name(&self) -> &'static str {
        dispatch!(self, s => name_of(s), none => "NopPruner")
    }

    /// Parses a JSON value (as from JSON or YAML), naming `path` (e.g. `pruner`) in errors.
    pub fn from_value(v: &Value, path: &str) -> Result<Self, SpecError> {
        let obj = v.as_object().ok_or_else(|| {
            invalid(
                path,
                format!("must be an object with one of the keys {KEYS}"),
            )
        })?;
        if obj.len() != 1 {
            return Err(invalid(
                path,
                format!(
                    "must have exactly one key (one of {KEYS}), got {}",
                    obj.len()
                ),
            ));
        }
        let (key, inner) = obj.iter().next().expect("one key");
        let p = format!("{path}.{key}");
        let empty = Map::new();
        let map = match inner {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => return Err(invalid(&p, "must be an object")),
        };
        let f = Fields { path: &p, map };
        Ok(match key.as_str() {
            MedianSpec::KEY => PrunerSpec::Median(MedianSpec::parse(&f)?),
            PercentileSpec::KEY => PrunerSpec::Percentile(PercentileSpec::parse(&f)?),
            SuccessiveHalvingSpec::KEY => {
                PrunerSpec::SuccessiveHalving(SuccessiveHalvingSpec::parse(&f)?)
            }
            HyperbandSpec::KEY => PrunerSpec::Hyperband(HyperbandSpec::parse(&f)?),
            ThresholdSpec::KEY => PrunerSpec::Threshold(ThresholdSpec::parse(&f)?),
            PatientSpec::KEY => PrunerSpec::Patient(PatientSpec::parse(&f)?),
            WilcoxonSpec::KEY => PrunerSpec::Wilcoxon(WilcoxonSpec::parse(&f)?),
            AshaSpec::KEY => PrunerSpec::Asha(AshaSpec::parse(&f)?),
            "none" => {
                f.only(&[])?;
                PrunerSpec::Nop
            }
            other => {
                return Err(SpecError::UnknownField {
                    path: path.to_string(),
                    field: other.to_string(),
                    expected: KEYS.to_string(),
                });
            }
        })
    }

    /// The spec as a JSON value, every parameter explicit.
    pub fn to_value(&self) -> Value {
        let inner = dispatch!(self, s => s.to_value(), none => json!({}));
        let mut m = Map::new();
        m.insert(self.key().to_string(), inner);
        Value::Object(m)
    }

    /// Checks every rule Optuna's constructors enforce; errors name `pruner.<key>.<field>`.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.validate_at("pruner")
    }

    pub fn validate_at(&self, root: &str) -> Result<(), SpecError> {
        let p = format!("{root}.{}", self.key());
        dispatch!(self, s => s.validate(&p), none => Ok(()))
    }

    pub(super) fn build_unchecked(&self) -> Box<dyn Pruner> {
        dispatch!(self, s => s.build(), none => Box::new(NopPruner))
    }
}

/// Builds the pruner a (validated) spec describes.
pub fn build(spec: &PrunerSpec) -> Result<Box<dyn Pruner>, SpecError> {
    spec.validate()?;
    Ok(spec.build_unchecked())
}

/// Typed access to one pruner's fields, errors naming `path.field`.
pub(crate) struct Fields<'a> {
    pub(super) path: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    /// The field's value, `null` read as absent.
    pub(super) fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub(super) fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.path)
    }

    pub(super) fn only(&self, allowed: &[&str]) -> Result<(), SpecError> {
        for k in self.map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(SpecError::UnknownField {
                    path: self.path.to_string(),
                    field: k.clone(),
                    expected: if allowed.is_empty() {
                        "no fields".into()
                    } else {
                        allowed.join(", ")
                    },
                });
            }
        }
        Ok(())
    }

    pub(super) fn int(&self, field: &str, default: i64) -> Result<i64, SpecError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => as_int(v)
                .ok_or_else(|| invalid(&self.at(field), format!("must be an integer, got {v}"))),
        }
    }

    pub(super) fn float(&self, field: &str, default: f64) -> Result<f64, SpecError> {
        Ok(self.opt_float(field)?.unwrap_or(default))
    }

    pub(super) fn opt_float(&self, field: &str) -> Result<Option<f64>, SpecError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(&self.at(field), format!("must be a number, got {v}"))),
        }
    }

    pub(super) fn required_float(&self, field: &str) -> Result<f64, SpecError> {
        self.opt_float(field)?.ok_or_else(|| SpecError::Missing {
            path: self.path.to_string(),
            field: field.to_string(),
        })
    }

    pub(super) fn resource(&self, field: &str, default: Resource) -> Result<Resource, SpecError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(s)) if s == "auto" => Ok(Resource::Auto),
            Some(v) => as_int(v).map(Resource::Steps).ok_or_else(|| {
                invalid(
                    &self.at(field),
                    format!("must be \"auto\" or an integer, got {v}"),
                )
            }),
        }
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

impl Serialize for PrunerSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PrunerSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        PrunerSpec::from_value(&v, "pruner").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_roundtrip() {
        let s: PrunerSpec = serde_yaml::from_str("median: {}").unwrap();
        assert_eq!(s, PrunerSpec::Median(MedianSpec::default()));
        let again: PrunerSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(s, again);
        let p: PrunerSpec = serde_yaml::from_str(
            "patient: {patience: 2, wrapped: {successiveHalving: {minResource: 3}}}",
        )
        .unwrap();
        let again: PrunerSpec = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(p, again);
    }

    #[test]
    fn errors_name_the_field() {
        let s: PrunerSpec = serde_yaml::from_str("percentile: {percentile: 120}").unwrap();
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "pruner.percentile.percentile: must be within [0, 100], got 120"
        );
        let e = serde_yaml::from_str::<PrunerSpec>("median: {}\nnone: {}").unwrap_err();
        assert!(e.to_string().contains("exactly one key"), "{e}");
        let e = serde_yaml::from_str::<PrunerSpec>("median: {warmup: 1}").unwrap_err();
        assert!(
            e.to_string()
                .contains("pruner.median: unknown field `warmup`"),
            "{e}"
        );
        let s: PrunerSpec = serde_yaml::from_str("successiveHalving: {bootstrapCount: 2}").unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("pruner.successiveHalving.bootstrapCount")
        );
        let s: PrunerSpec = serde_yaml::from_str("threshold: {}").unwrap();
        assert!(build(&s).is_err());
        let s: PrunerSpec =
            serde_yaml::from_str("patient: {patience: 1, wrapped: {median: {intervalSteps: 0}}}")
                .unwrap();
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .starts_with("pruner.patient.wrapped.median.intervalSteps")
        );
    }
}
