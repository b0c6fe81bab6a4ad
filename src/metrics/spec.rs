//! `spec.metrics` of a Study: where a trial's intermediate objective values come from.
//!
//! Exactly one of `logs` (the default), `prometheus` or `push`.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// How the trainer's log lines are parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LogFormat {
    // (plain comments on variants: doc comments would turn the schema into a `oneOf`)
    // Katib-compatible `epoch=3 val_loss=0.41 val_acc=0.88`, any order, other text ignored.
    #[default]
    KeyValue,
    // One JSON object per line (`{"epoch": 3, "val_loss": 0.41}`); other lines ignored.
    Json,
    // A regular expression with the named groups `value` (required) and `step` (optional).
    Regex,
}

/// `spec.metrics.logs`: follow the primary container's log and parse it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsSpec {
    /// `keyValue` (default), `json` or `regex`.
    #[serde(default)]
    pub format: LogFormat,
    /// Name of the step key for `keyValue` and `json` (default `step`). A line without it counts
    /// as the next step.
    #[serde(default = "default_step_key")]
    pub step_key: String,
    /// For `format: regex`: a regular expression with the named groups `value` and optionally `step`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

fn default_step_key() -> String {
    "step".to_string()
}

impl Default for LogsSpec {
    fn default() -> Self {
        LogsSpec {
            format: LogFormat::KeyValue,
            step_key: default_step_key(),
            pattern: None,
        }
    }
}

/// A reference to a Secret in the Study's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    pub name: String,
}

/// Credentials for Prometheus. The Secret holds either `username` + `password` (basic auth)
/// or `token` (bearer auth), and must be labelled `lopper.dev/prometheus-auth: "true"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusAuth {
    pub secret_ref: SecretRef,
}

/// `spec.metrics.prometheus`: PromQL instant queries for the running trials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSpec {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`.
    pub url: String,
    /// PromQL for the objective value; `{{trial}}`, `{{study}}`, `{{namespace}}` are substituted.
    pub value: String,
    /// PromQL for the step (e.g. `epoch{trial="{{trial}}"}`); a new point is recorded when it advances.
    /// Without it, every new sample of `value` counts as the next step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Poll interval, a duration such as `15s` (default) or `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Optional credentials (basic or bearer) from a Secret labelled
    /// `lopper.dev/prometheus-auth: "true"` (its owner opts in; other Secrets are refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<PrometheusAuth>,
}

impl PrometheusSpec {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

    /// The poll interval (default 15 s, at least 100 ms).
    pub fn interval(&self) -> Result<Duration, String> {
        match &self.interval {
            None => Ok(Self::DEFAULT_INTERVAL),
            Some(s) => humantime::parse_duration(s.trim())
                .map(|d| d.max(Duration::from_millis(100)))
                .map_err(|e| format!("spec.metrics.prometheus.interval {s:?}: {e}")),
        }
    }
}

/// `spec.metrics.push`: trainers POST their metrics to the operator (no options yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSpec {}

/// `spec.metrics`: exactly one of `logs`, `prometheus`, `push`. Default: `logs` with defaults.
///
/// (De)serialized as a map with exactly one key (through [`MetricsSpecMap`], so that YAML
/// deserializers that want tags for enums also accept `{push: {}}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MetricsSpecMap", into = "MetricsSpecMap")]
pub enum MetricsSpec {
    Logs(LogsSpec),
    Prometheus(PrometheusSpec),
    Push(PushSpec),
}

/// The wire form of [`MetricsSpec`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsSpecMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSpec>,
}

impl TryFrom<MetricsSpecMap> for MetricsSpec {
    type Error = String;
    fn try_from(m: MetricsSpecMap) -> Result<Self, String> {
        match (m.logs, m.prometheus, m.push) {
            (Some(l), None, None) => Ok(MetricsSpec::Logs(l)),
            (None, Some(p), None) => Ok(MetricsSpec::Prometheus(p)),
            (None, None, Some(p)) => Ok(MetricsSpec::Push(p)),
            (None, None, None) => {
                Err("spec.metrics needs exactly one of logs, prometheus, push (none given)".into())
            }
            _ => Err("spec.metrics needs exactly one of logs, prometheus, push".into()),
        }
    }
}

impl From<MetricsSpec> for MetricsSpecMap {
    fn from(m: MetricsSpec) -> Self {
        match m {
            MetricsSpec::Logs(l) => MetricsSpecMap {
                logs: Some(l),
                ..Default::default()
            },
            MetricsSpec::Prometheus(p) => MetricsSpecMap {
                prometheus: Some(p),
                ..Default::default()
            },
            MetricsSpec::Push(p) => MetricsSpecMap {
                push: Some(p),
                ..Default::default()
            },
        }
    }
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec::Logs(LogsSpec::default())
    }
}

impl MetricsSpec {
    /// The source name used in telemetry labels: `logs`, `prometheus` or `push`.
    pub fn source(&self) -> &'static str {
        match self {
            MetricsSpec::Logs(_) => "logs",
            MetricsSpec::Prometheus(_) => "prometheus",
            MetricsSpec::Push(_) => "push",
        }
    }

    /// Checks what the schema cannot: the regex compiles and has a `value` group, the interval parses.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            MetricsSpec::Logs(l) => l.validate(),
            MetricsSpec::Prometheus(p) => {
                if p.url.trim().is_empty() {
                    return Err("spec.metrics.prometheus.url must not be empty".into());
                }
                if p.value.trim().is_empty() {
                    return Err("spec.metrics.prometheus.value must not be empty".into());
                }
                p.interval().map(|_| ())
            }
            MetricsSpec::Push(_) => Ok(()),
        }
    }
}

impl LogsSpec {
    /// Checks the pattern for `format: regex` (compiles, has a `value` group).
    pub fn validate(&self) -> Result<(), String> {
        crate::metrics::parser::LineParser::new(self, "objective")
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Hand-written so that the result is a Kubernetes *structural* schema: an object with three
/// optional properties and `minProperties`/`maxProperties` 1 (no `oneOf`, no `$ref`).
impl JsonSchema for MetricsSpec {
    fn schema_name() -> Cow<'static, str> {
        "MetricsSpec".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let logs = inline::<LogsSpec>(generator);
        let prometheus = inline::<PrometheusSpec>(generator);
        let push = inline::<PushSpec>(generator);
        json_schema!({
            "description": "Where intermediate metrics come from: exactly one of logs (default), prometheus, push.",
            "type": "object",
            "properties": {
                "logs": logs,
                "prometheus": prometheus,
                "push": push,
            },
            "minProperties": 1,
            "maxProperties": 1,
        })
    }
}

/// The schema of `T` inlined (never a `$ref`, whatever the generator's settings).
fn inline<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut s = T::json_schema(generator);
    if let Some(obj) = s.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
        // An empty object (push: {}) must keep its fields in a structural schema.
        if obj.get("type").and_then(|t| t.as_str()) == Some("object")
            && !obj.contains_key("properties")
        {
            obj.insert("properties".into(), serde_json::json!({}));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_schema_and_serde() {
        let mut generator = schemars::generate::SchemaSettings::openapi3()
            .with(|s| s.inline_subschemas = true)
            .into_generator();
        let schema = generator.root_schema_for::<MetricsSpec>().to_value();
        let text = schema.to_string();
        for banned in ["oneOf", "anyOf", "allOf", "$ref"] {
            assert!(!text.contains(banned), "{banned} in {text}");
        }
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["minProperties"], 1);
        assert_eq!(schema["maxProperties"], 1);
        assert_eq!(schema["properties"]["push"]["type"], "object");
        assert_eq!(
            schema["properties"]["logs"]["properties"]["format"]["enum"],
            serde_json::json!(["keyValue", "json", "regex"])
        );

        let m: MetricsSpec =
            serde_yaml::from_str("logs: {format: keyValue, stepKey: epoch}").unwrap();
        assert_eq!(
            m,
            MetricsSpec::Logs(LogsSpec {
                step_key: "epoch".into(),
                ..Default::default()
            })
        );
        let m: MetricsSpec = serde_yaml::from_str("push: {}").unwrap();
        assert_eq!(m, MetricsSpec::Push(PushSpec {}));
        let m: MetricsSpec = serde_yaml::from_str(
            "prometheus: {url: 'http://p:9090', value: 'val_loss{trial=\"{{trial}}\"}', interval: 2s}",
        )
        .unwrap();
        let MetricsSpec::Prometheus(p) = &m else {
            panic!()
        };
        assert_eq!(p.interval().unwrap(), Duration::from_secs(2));
        assert!(m.validate().is_ok());
        assert!(serde_yaml::from_str::<MetricsSpec>("{logs: {}, push: {}}").is_err());
        assert!(serde_json::from_str::<MetricsSpec>("{}").is_err());
        assert_eq!(
            serde_json::to_value(MetricsSpec::Push(PushSpec {})).unwrap(),
            serde_json::json!({"push": {}})
        );
        let m: MetricsSpec = serde_json::from_str(r#"{"logs": {}}"#).unwrap();
        assert_eq!(m, MetricsSpec::default());
        let bad = MetricsSpec::Logs(LogsSpec {
            format: LogFormat::Regex,
            ..Default::default()
        });
        assert!(bad.validate().unwrap_err().contains("pattern"));
    }
}
