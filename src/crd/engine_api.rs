//! The engine and metric-source types the CRDs embed, in one place.
//!
//! The Study spec reuses the engine's own serde types for `parameters`, `sampler` and
//! `pruner`, and the metrics module's type for `metrics`, so `lopper run` and the
//! controller can never disagree about a field. Their schemas live here, not in the
//! engine: structural-schema extensions (`x-kubernetes-*`) are Kubernetes' business, and
//! the defaults they show are read from the engine's own `Default`s.
//!
//! `ParamSpec` is part of the Study CRD, whose schema must be *structural*: every node has a
//! `type`, no `oneOf`/`anyOf`/`$ref`. Hence `float`/`int`/`categorical` are three optional
//! objects (exactly one is checked when parsing, the CRD adds a CEL rule), and the
//! mixed-type scalars of `choices` and `when` are array items declared as
//! `{x-kubernetes-preserve-unknown-fields: true}`, the one structural exception that admits
//! strings, numbers *and* booleans (`x-kubernetes-int-or-string` would refuse floats and
//! booleans). Parsing then rejects anything that is not a scalar.

pub use crate::engine::pruners::PrunerSpec;
pub use crate::engine::samplers::SamplerSpec;
pub use crate::engine::space::ParamSpec;
pub use crate::metrics::spec::MetricsSpec;

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

/// `spec.parameters`: the engine's [`ParamSpec`]s, with the structural-schema extensions
/// the API server needs for choices of any scalar type.
pub fn parameters_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": param_spec_schema()})
}

/// Schema of a scalar of any type (string, number, boolean) that stays structural.
fn any_scalar_schema() -> serde_json::Value {
    serde_json::json!({ "x-kubernetes-preserve-unknown-fields": true })
}

fn param_spec_schema() -> Value {
    serde_json::json!({
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

/// `spec.sampler`: exactly one key.
pub fn sampler_schema(_: &mut SchemaGenerator) -> Schema {
    let mut s: Schema = {
        json_schema!({
            "type": "object",
            "description": "Exactly one of random, grid, tpe, qmc. Default: tpe.",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "random": {
                    "type": "object",
                    "properties": {"seed": {"type": "integer", "format": "uint64", "minimum": 0}}
                },
                "grid": {
                    "type": "object",
                    "properties": {"seed": {"type": "integer", "format": "uint64", "minimum": 0}}
                },
                "tpe": {
                    "type": "object",
                    "properties": {
                        "seed": {"type": "integer", "format": "uint64", "minimum": 0},
                        "startupTrials": {"type": "integer", "format": "uint32", "minimum": 0},
                        "candidates": {"type": "integer", "format": "uint32", "minimum": 1},
                        "multivariate": {"type": "boolean"},
                        "considerPruned": {"type": "boolean"},
                        "constantLiar": {"type": "boolean"}
                    }
                },
                "qmc": {
                    "type": "object",
                    "properties": {
                        "seed": {"type": "integer", "format": "uint64", "minimum": 0},
                        "kind": {"type": "string", "enum": ["sobol", "halton"]},
                        "scramble": {"type": "boolean"}
                    }
                }
            }
        })
    };
    s.insert("nullable".into(), true.into());
    s
}

/// `spec.pruner`: exactly one key, Optuna's defaults.
pub fn pruner_schema(_: &mut SchemaGenerator) -> Schema {
    use crate::engine::pruners::spec::{Gate, HyperbandSpec, SuccessiveHalvingSpec, WilcoxonSpec};
    let (g, sh) = (Gate::default(), SuccessiveHalvingSpec::default());
    let (hb, wx) = (HyperbandSpec::default(), WilcoxonSpec::default());
    let int = |min: i64, default: i64, desc: &str| json!({"type": "integer", "format": "int64", "minimum": min, "default": default, "description": desc});
    let gate = |m: &mut Map<String, Value>| {
        m.insert(
            "startupTrials".into(),
            int(
                0,
                g.startup_trials,
                "Pruning is disabled until this many trials completed.",
            ),
        );
        m.insert(
            "warmupSteps".into(),
            int(0, g.warmup_steps, "No pruning before this step."),
        );
        m.insert(
            "intervalSteps".into(),
            int(
                1,
                g.interval_steps,
                "Steps between pruning checks, offset by warmupSteps.",
            ),
        );
        m.insert(
            "minTrials".into(),
            int(
                1,
                g.min_trials,
                "Minimum completed trials reporting the step.",
            ),
        );
    };
    let resource = |desc: &str| json!({"x-kubernetes-int-or-string": true, "description": desc});
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
                    "reductionFactor": int(2, sh.reduction_factor, "Reduction factor eta."),
                    "minEarlyStoppingRate": int(0, sh.min_early_stopping_rate, "Minimum early-stopping rate."),
                    "bootstrapCount": int(0, sh.bootstrap_count, "Trials needed at a rung before promotion (requires an integer minResource)."),
                }
            },
            "hyperband": {
                "type": "object",
                "description": "Optuna HyperbandPruner.",
                "properties": {
                    "minResource": int(1, hb.min_resource, "Minimum resource (steps)."),
                    "maxResource": resource("\"auto\" or the maximum resource (steps, >= 1)."),
                    "reductionFactor": int(2, hb.reduction_factor, "Reduction factor eta."),
                    "bootstrapCount": int(0, hb.bootstrap_count, "Trials needed at a rung before promotion (requires an integer maxResource)."),
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
                    "pThreshold": {"type": "number", "format": "double", "minimum": 0.0, "maximum": 1.0, "default": wx.p_threshold, "description": "Prune when the p-value is below this."},
                    "startupSteps": int(0, wx.startup_steps, "Shared steps needed before testing."),
                }
            },
            "asha": {
                "type": "object",
                "description": "Budget-aware ASHA planner: brackets and rungs planned from the step budget (see `lopper preview`).",
                "required": ["maxSteps"],
                "properties": {
                    "mode": {"type": "string", "enum": ["aggressive", "standard", "conservative"], "default": "standard",
                             "description": "aggressive: one bracket, most rungs; standard: the more aggressive half of the brackets; conservative: every bracket."},
                    "maxSteps": {"type": "integer", "format": "int64", "minimum": 1, "description": "A trial's full length in reported steps (required: no default)."},
                    "reductionFactor": int(2, 3, "Reduction factor eta: the top 1/eta of a rung go on."),
                    "maxRungs": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 10, "default": 5, "description": "Most rungs a bracket has (the full length included)."},
                    "budgetSteps": {"type": "integer", "format": "int64", "minimum": 1, "description": "Steps to plan for (default: spec.budget.steps)."},
                    "parallelism": {"type": "integer", "format": "int64", "minimum": 1, "description": "Parallel trials to plan for (default: spec.parallelism)."},
                }
            },
            "none": {"type": "object", "description": "Never prune.", "properties": {}},
        }
    });
    let Value::Object(mut map) = schema else {
        unreachable!("schema is an object")
    };
    map.insert("nullable".into(), true.into());
    Schema::from(map)
}
