//! The pruner spec: the `spec.pruner` field of a Study, one key naming the pruner,
//! camelCase parameters, Optuna's defaults. Parsing checks shape and types (naming the
//! field path on error); [`PrunerSpec::validate`] checks every rule Optuna's
//! constructors enforce; [`build`] turns a valid spec into a [`Pruner`].

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::Pruner;
use super::hyperband::HyperbandPruner;
use super::median::median_pruner;
use super::none::NopPruner;
use super::patient::PatientPruner;
use super::percentile::PercentilePruner;
use super::successive_halving::SuccessiveHalvingPruner;
use super::threshold::ThresholdPruner;
use super::wilcoxon::WilcoxonPruner;

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

fn invalid(path: &str, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

/// `auto` or a positive integer resource (steps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resource {
    #[default]
    Auto,
    Steps(i64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct MedianSpec {
    pub startup_trials: i64,
    pub warmup_steps: i64,
    pub interval_steps: i64,
    pub min_trials: i64,
}

impl Default for MedianSpec {
    fn default() -> Self {
        MedianSpec {
            startup_trials: 5,
            warmup_steps: 0,
            interval_steps: 1,
            min_trials: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PercentileSpec {
    pub percentile: f64,
    pub startup_trials: i64,
    pub warmup_steps: i64,
    pub interval_steps: i64,
    pub min_trials: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SuccessiveHalvingSpec {
    pub min_resource: Resource,
    pub reduction_factor: i64,
    pub min_early_stopping_rate: i64,
    pub bootstrap_count: i64,
}

impl Default for SuccessiveHalvingSpec {
    fn default() -> Self {
        SuccessiveHalvingSpec {
            min_resource: Resource::Auto,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HyperbandSpec {
    pub min_resource: i64,
    pub max_resource: Resource,
    pub reduction_factor: i64,
    pub bootstrap_count: i64,
}

impl Default for HyperbandSpec {
    fn default() -> Self {
        HyperbandSpec {
            min_resource: 1,
            max_resource: Resource::Auto,
            reduction_factor: 3,
            bootstrap_count: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdSpec {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub warmup_steps: i64,
    pub interval_steps: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatientSpec {
    pub patience: i64,
    pub min_delta: f64,
    pub wrapped: Option<Box<PrunerSpec>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WilcoxonSpec {
    pub p_threshold: f64,
    pub startup_steps: i64,
}

impl Default for WilcoxonSpec {
    fn default() -> Self {
        WilcoxonSpec {
            p_threshold: 0.1,
            startup_steps: 2,
        }
    }
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
    /// `none: {}` — never prune.
    Nop,
}

const KEYS: &str =
    "median, percentile, successiveHalving, hyperband, threshold, patient, wilcoxon, none";

impl PrunerSpec {
    /// The spec's key (`median`, `successiveHalving`, ...).
    pub fn key(&self) -> &'static str {
        match self {
            PrunerSpec::Median(_) => "median",
            PrunerSpec::Percentile(_) => "percentile",
            PrunerSpec::SuccessiveHalving(_) => "successiveHalving",
            PrunerSpec::Hyperband(_) => "hyperband",
            PrunerSpec::Threshold(_) => "threshold",
            PrunerSpec::Patient(_) => "patient",
            PrunerSpec::Wilcoxon(_) => "wilcoxon",
            PrunerSpec::Nop => "none",
        }
    }

    /// Optuna's class name of the pruner (`MedianPruner`, `SuccessiveHalvingPruner`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            PrunerSpec::Median(_) => "MedianPruner",
            PrunerSpec::Percentile(_) => "PercentilePruner",
            PrunerSpec::SuccessiveHalving(_) => "SuccessiveHalvingPruner",
            PrunerSpec::Hyperband(_) => "HyperbandPruner",
            PrunerSpec::Threshold(_) => "ThresholdPruner",
            PrunerSpec::Patient(_) => "PatientPruner",
            PrunerSpec::Wilcoxon(_) => "WilcoxonPruner",
            PrunerSpec::Nop => "NopPruner",
        }
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
        let fields = match inner {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => return Err(invalid(&p, "must be an object")),
        };
        let f = Fields {
            path: &p,
            map: fields,
        };
        let spec = match key.as_str() {
            "median" => {
                f.only(&["startupTrials", "warmupSteps", "intervalSteps", "minTrials"])?;
                let d = MedianSpec::default();
                PrunerSpec::Median(MedianSpec {
                    startup_trials: f.int("startupTrials", d.startup_trials)?,
                    warmup_steps: f.int("warmupSteps", d.warmup_steps)?,
                    interval_steps: f.int("intervalSteps", d.interval_steps)?,
                    min_trials: f.int("minTrials", d.min_trials)?,
                })
            }
            "percentile" => {
                f.only(&[
                    "percentile",
                    "startupTrials",
                    "warmupSteps",
                    "intervalSteps",
                    "minTrials",
                ])?;
                let d = MedianSpec::default();
                PrunerSpec::Percentile(PercentileSpec {
                    percentile: f.required_float("percentile")?,
                    startup_trials: f.int("startupTrials", d.startup_trials)?,
                    warmup_steps: f.int("warmupSteps", d.warmup_steps)?,
                    interval_steps: f.int("intervalSteps", d.interval_steps)?,
                    min_trials: f.int("minTrials", d.min_trials)?,
                })
            }
            "successiveHalving" => {
                f.only(&[
                    "minResource",
                    "reductionFactor",
                    "minEarlyStoppingRate",
                    "bootstrapCount",
                ])?;
                let d = SuccessiveHalvingSpec::default();
                PrunerSpec::SuccessiveHalving(SuccessiveHalvingSpec {
                    min_resource: f.resource("minResource", d.min_resource)?,
                    reduction_factor: f.int("reductionFactor", d.reduction_factor)?,
                    min_early_stopping_rate: f
                        .int("minEarlyStoppingRate", d.min_early_stopping_rate)?,
                    bootstrap_count: f.int("bootstrapCount", d.bootstrap_count)?,
                })
            }
            "hyperband" => {
                f.only(&[
                    "minResource",
                    "maxResource",
                    "reductionFactor",
                    "bootstrapCount",
                ])?;
                let d = HyperbandSpec::default();
                PrunerSpec::Hyperband(HyperbandSpec {
                    min_resource: f.int("minResource", d.min_resource)?,
                    max_resource: f.resource("maxResource", d.max_resource)?,
                    reduction_factor: f.int("reductionFactor", d.reduction_factor)?,
                    bootstrap_count: f.int("bootstrapCount", d.bootstrap_count)?,
                })
            }
            "threshold" => {
                f.only(&["lower", "upper", "warmupSteps", "intervalSteps"])?;
                PrunerSpec::Threshold(ThresholdSpec {
                    lower: f.opt_float("lower")?,
                    upper: f.opt_float("upper")?,
                    warmup_steps: f.int("warmupSteps", 0)?,
                    interval_steps: f.int("intervalSteps", 1)?,
                })
            }
            "patient" => {
                f.only(&["patience", "minDelta", "wrapped"])?;
                let patience = match fields.get("patience") {
                    None | Some(Value::Null) => {
                        return Err(SpecError::Missing {
                            path: p.clone(),
                            field: "patience".into(),
                        });
                    }
                    Some(_) => f.int("patience", 0)?,
                };
                let wrapped = match fields.get("wrapped") {
                    None | Some(Value::Null) => None,
                    Some(w) => Some(Box::new(PrunerSpec::from_value(
                        w,
                        &format!("{p}.wrapped"),
                    )?)),
                };
                PrunerSpec::Patient(PatientSpec {
                    patience,
                    min_delta: f.float("minDelta", 0.0)?,
                    wrapped,
                })
            }
            "wilcoxon" => {
                f.only(&["pThreshold", "startupSteps"])?;
                let d = WilcoxonSpec::default();
                PrunerSpec::Wilcoxon(WilcoxonSpec {
                    p_threshold: f.float("pThreshold", d.p_threshold)?,
                    startup_steps: f.int("startupSteps", d.startup_steps)?,
                })
            }
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
        };
        Ok(spec)
    }

    /// The spec as a JSON value, every parameter explicit.
    pub fn to_value(&self) -> Value {
        let res = |r: &Resource| match r {
            Resource::Auto => json!("auto"),
            Resource::Steps(n) => json!(n),
        };
        let inner = match self {
            PrunerSpec::Median(s) => json!({
                "startupTrials": s.startup_trials, "warmupSteps": s.warmup_steps,
                "intervalSteps": s.interval_steps, "minTrials": s.min_trials}),
            PrunerSpec::Percentile(s) => json!({
                "percentile": s.percentile, "startupTrials": s.startup_trials,
                "warmupSteps": s.warmup_steps, "intervalSteps": s.interval_steps,
                "minTrials": s.min_trials}),
            PrunerSpec::SuccessiveHalving(s) => json!({
                "minResource": res(&s.min_resource), "reductionFactor": s.reduction_factor,
                "minEarlyStoppingRate": s.min_early_stopping_rate,
                "bootstrapCount": s.bootstrap_count}),
            PrunerSpec::Hyperband(s) => json!({
                "minResource": s.min_resource, "maxResource": res(&s.max_resource),
                "reductionFactor": s.reduction_factor, "bootstrapCount": s.bootstrap_count}),
            PrunerSpec::Threshold(s) => json!({
                "lower": s.lower, "upper": s.upper, "warmupSteps": s.warmup_steps,
                "intervalSteps": s.interval_steps}),
            PrunerSpec::Patient(s) => {
                let mut m = json!({"patience": s.patience, "minDelta": s.min_delta});
                if let Some(w) = &s.wrapped {
                    m["wrapped"] = w.to_value();
                }
                m
            }
            PrunerSpec::Wilcoxon(s) => json!({
                "pThreshold": s.p_threshold, "startupSteps": s.startup_steps}),
            PrunerSpec::Nop => json!({}),
        };
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
        let at_least = |field: &str, v: i64, min: i64| {
            if v < min {
                Err(invalid(
                    &format!("{p}.{field}"),
                    format!("must be at least {min}, got {v}"),
                ))
            } else {
                Ok(())
            }
        };
        let gate = |startup: i64, warmup: i64, interval: i64, min_trials: i64| {
            at_least("startupTrials", startup, 0)?;
            at_least("warmupSteps", warmup, 0)?;
            at_least("intervalSteps", interval, 1)?;
            at_least("minTrials", min_trials, 1)
        };
        match self {
            PrunerSpec::Median(s) => gate(
                s.startup_trials,
                s.warmup_steps,
                s.interval_steps,
                s.min_trials,
            ),
            PrunerSpec::Percentile(s) => {
                if !(0.0..=100.0).contains(&s.percentile) {
                    return Err(invalid(
                        &format!("{p}.percentile"),
                        format!("must be within [0, 100], got {}", s.percentile),
                    ));
                }
                gate(
                    s.startup_trials,
                    s.warmup_steps,
                    s.interval_steps,
                    s.min_trials,
                )
            }
            PrunerSpec::SuccessiveHalving(s) => {
                if let Resource::Steps(n) = s.min_resource {
                    at_least("minResource", n, 1)?;
                }
                at_least("reductionFactor", s.reduction_factor, 2)?;
                at_least("minEarlyStoppingRate", s.min_early_stopping_rate, 0)?;
                at_least("bootstrapCount", s.bootstrap_count, 0)?;
                if s.bootstrap_count > 0 && s.min_resource == Resource::Auto {
                    return Err(invalid(
                        &format!("{p}.bootstrapCount"),
                        format!(
                            "must be 0 when minResource is auto, got {}",
                            s.bootstrap_count
                        ),
                    ));
                }
                Ok(())
            }
            PrunerSpec::Hyperband(s) => {
                at_least("minResource", s.min_resource, 1)?;
                if let Resource::Steps(n) = s.max_resource {
                    at_least("maxResource", n, 1)?;
                }
                at_least("reductionFactor", s.reduction_factor, 2)?;
                at_least("bootstrapCount", s.bootstrap_count, 0)?;
                if s.bootstrap_count > 0 && s.max_resource == Resource::Auto {
                    return Err(invalid(
                        &format!("{p}.bootstrapCount"),
                        format!(
                            "must be 0 when maxResource is auto, got {}",
                            s.bootstrap_count
                        ),
                    ));
                }
                Ok(())
            }
            PrunerSpec::Threshold(s) => {
                if s.lower.is_none() && s.upper.is_none() {
                    return Err(invalid(&p, "at least one of lower and upper must be set"));
                }
                if let (Some(l), Some(u)) = (s.lower, s.upper)
                    && l > u
                {
                    return Err(invalid(
                        &format!("{p}.lower"),
                        format!("must not be greater than upper ({u}), got {l}"),
                    ));
                }
                at_least("warmupSteps", s.warmup_steps, 0)?;
                at_least("intervalSteps", s.interval_steps, 1)
            }
            PrunerSpec::Patient(s) => {
                at_least("patience", s.patience, 0)?;
                if s.min_delta < 0.0 {
                    return Err(invalid(
                        &format!("{p}.minDelta"),
                        format!("must not be negative, got {}", s.min_delta),
                    ));
                }
                match &s.wrapped {
                    Some(w) => w.validate_at(&format!("{p}.wrapped")),
                    None => Ok(()),
                }
            }
            PrunerSpec::Wilcoxon(s) => {
                if !(0.0..=1.0).contains(&s.p_threshold) {
                    return Err(invalid(
                        &format!("{p}.pThreshold"),
                        format!("must be within [0, 1], got {}", s.p_threshold),
                    ));
                }
                at_least("startupSteps", s.startup_steps, 0)
            }
            PrunerSpec::Nop => Ok(()),
        }
    }
}

/// Builds the pruner a (validated) spec describes.
pub fn build(spec: &PrunerSpec) -> Result<Box<dyn Pruner>, SpecError> {
    spec.validate()?;
    Ok(build_unchecked(spec))
}

fn build_unchecked(spec: &PrunerSpec) -> Box<dyn Pruner> {
    let u = |v: i64| v.max(0) as u64;
    match spec {
        PrunerSpec::Median(s) => Box::new(median_pruner(
            u(s.startup_trials),
            s.warmup_steps,
            s.interval_steps,
            u(s.min_trials),
        )),
        PrunerSpec::Percentile(s) => Box::new(PercentilePruner::new(
            s.percentile,
            u(s.startup_trials),
            s.warmup_steps,
            s.interval_steps,
            u(s.min_trials),
        )),
        PrunerSpec::SuccessiveHalving(s) => Box::new(SuccessiveHalvingPruner {
            min_resource: match s.min_resource {
                Resource::Auto => None,
                Resource::Steps(n) => Some(n),
            },
            reduction_factor: s.reduction_factor,
            min_early_stopping_rate: s.min_early_stopping_rate,
            bootstrap_count: u(s.bootstrap_count),
        }),
        PrunerSpec::Hyperband(s) => Box::new(HyperbandPruner {
            min_resource: s.min_resource,
            max_resource: match s.max_resource {
                Resource::Auto => None,
                Resource::Steps(n) => Some(n),
            },
            reduction_factor: s.reduction_factor,
            bootstrap_count: u(s.bootstrap_count),
        }),
        PrunerSpec::Threshold(s) => Box::new(ThresholdPruner {
            lower: s.lower.unwrap_or(f64::NEG_INFINITY),
            upper: s.upper.unwrap_or(f64::INFINITY),
            n_warmup_steps: s.warmup_steps,
            interval_steps: s.interval_steps,
        }),
        PrunerSpec::Patient(s) => Box::new(PatientPruner {
            wrapped: s.wrapped.as_deref().map(build_unchecked),
            patience: u(s.patience),
            min_delta: s.min_delta,
        }),
        PrunerSpec::Wilcoxon(s) => Box::new(WilcoxonPruner {
            p_threshold: s.p_threshold,
            n_startup_steps: u(s.startup_steps),
        }),
        PrunerSpec::Nop => Box::new(NopPruner),
    }
}

/// Typed access to one pruner's fields, errors naming `path.field`.
struct Fields<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.path)
    }

    fn only(&self, allowed: &[&str]) -> Result<(), SpecError> {
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

    fn int(&self, field: &str, default: i64) -> Result<i64, SpecError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => as_int(v)
                .ok_or_else(|| invalid(&self.at(field), format!("must be an integer, got {v}"))),
        }
    }

    fn float(&self, field: &str, default: f64) -> Result<f64, SpecError> {
        Ok(self.opt_float(field)?.unwrap_or(default))
    }

    fn opt_float(&self, field: &str) -> Result<Option<f64>, SpecError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(&self.at(field), format!("must be a number, got {v}"))),
        }
    }

    fn required_float(&self, field: &str) -> Result<f64, SpecError> {
        self.opt_float(field)?.ok_or_else(|| SpecError::Missing {
            path: self.path.to_string(),
            field: field.to_string(),
        })
    }

    fn resource(&self, field: &str, default: Resource) -> Result<Resource, SpecError> {
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

impl JsonSchema for PrunerSpec {
    fn schema_name() -> Cow<'static, str> {
        "PrunerSpec".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let int = |min: i64, default: i64, desc: &str| json!({"type": "integer", "format": "int64", "minimum": min, "default": default, "description": desc});
        let gate = |m: &mut Map<String, Value>| {
            m.insert(
                "startupTrials".into(),
                int(
                    0,
                    5,
                    "Pruning is disabled until this many trials completed.",
                ),
            );
            m.insert(
                "warmupSteps".into(),
                int(0, 0, "No pruning before this step."),
            );
            m.insert(
                "intervalSteps".into(),
                int(1, 1, "Steps between pruning checks, offset by warmupSteps."),
            );
            m.insert(
                "minTrials".into(),
                int(1, 1, "Minimum completed trials reporting the step."),
            );
        };
        let resource =
            |desc: &str| json!({"x-kubernetes-int-or-string": true, "description": desc});
        let mut median = Map::new();
        gate(&mut median);
        let mut percentile = Map::new();
        percentile.insert(
            "percentile".into(),
            json!({"type": "number", "format": "double", "minimum": 0.0, "maximum": 100.0,
                   "description": "Percentile of trials kept (0-100)."}),
        );
        gate(&mut percentile);
        let obj = |props: Map<String, Value>, required: &[&str], desc: &str| {
            let mut o = json!({"type": "object", "description": desc, "properties": props});
            if !required.is_empty() {
                o["required"] = json!(required);
            }
            o
        };
        let schema = json!({
            "type": "object",
            "description": "Pruner deciding early stopping of trials (exactly one key), Optuna 5.0 semantics.",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "median": obj(median, &[], "Optuna MedianPruner."),
                "percentile": obj(percentile, &["percentile"], "Optuna PercentilePruner."),
                "successiveHalving": {
                    "type": "object",
                    "description": "Optuna SuccessiveHalvingPruner (ASHA).",
                    "properties": {
                        "minResource": resource("\"auto\" or the first rung's step (>= 1)."),
                        "reductionFactor": int(2, 4, "Reduction factor eta."),
                        "minEarlyStoppingRate": int(0, 0, "Minimum early-stopping rate."),
                        "bootstrapCount": int(0, 0, "Trials needed at a rung before promotion (requires an integer minResource)."),
                    }
                },
                "hyperband": {
                    "type": "object",
                    "description": "Optuna HyperbandPruner.",
                    "properties": {
                        "minResource": int(1, 1, "Minimum resource (steps)."),
                        "maxResource": resource("\"auto\" or the maximum resource (steps, >= 1)."),
                        "reductionFactor": int(2, 3, "Reduction factor eta."),
                        "bootstrapCount": int(0, 0, "Trials needed at a rung before promotion (requires an integer maxResource)."),
                    }
                },
                "threshold": {
                    "type": "object",
                    "description": "Optuna ThresholdPruner (at least one bound).",
                    "properties": {
                        "lower": {"type": "number", "format": "double", "nullable": true, "description": "Prune below this value."},
                        "upper": {"type": "number", "format": "double", "nullable": true, "description": "Prune above this value."},
                        "warmupSteps": int(0, 0, "No pruning before this step."),
                        "intervalSteps": int(1, 1, "Steps between pruning checks."),
                    }
                },
                "patient": {
                    "type": "object",
                    "description": "Optuna PatientPruner.",
                    "required": ["patience"],
                    "properties": {
                        "patience": {"type": "integer", "format": "int64", "minimum": 0, "description": "Steps without improvement tolerated."},
                        "minDelta": {"type": "number", "format": "double", "minimum": 0.0, "default": 0.0, "description": "Minimum improvement."},
                        "wrapped": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                    "description": "Pruner consulted once patience is exhausted (same shape as pruner)."},
                    }
                },
                "wilcoxon": {
                    "type": "object",
                    "description": "Optuna WilcoxonPruner.",
                    "properties": {
                        "pThreshold": {"type": "number", "format": "double", "minimum": 0.0, "maximum": 1.0, "default": 0.1, "description": "Prune when the p-value is below this."},
                        "startupSteps": int(0, 2, "Shared steps needed before testing."),
                    }
                },
                "none": {"type": "object", "description": "Never prune.", "properties": {}},
            }
        });
        let Value::Object(map) = schema else {
            unreachable!("schema is an object")
        };
        Schema::from(map)
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

    #[test]
    fn schema_is_structural() {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<PrunerSpec>();
        let text = serde_json::to_string(&schema).unwrap();
        assert!(!text.contains("$ref") && !text.contains("oneOf") && !text.contains("anyOf"));
        assert!(text.contains("\"maxProperties\":1"));
    }
}
