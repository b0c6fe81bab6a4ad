//! `spec.metrics` of a Study: where a trial's intermediate objective values come from.
//!
//! Exactly one of `logs` (the default), `prometheus`, `push`, `file` or `tensorboard`.

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

/// How the lines of a metrics file are parsed (`spec.metrics.file.format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FileFormat {
    // (plain comments on variants: doc comments would turn the schema into a `oneOf`)
    // Comma-separated values with a header line naming the columns (PyTorch Lightning's CSVLogger).
    #[default]
    Csv,
    // One JSON object per line.
    Jsonl,
    // `epoch=3 val_loss=0.41` lines, as the `logs` source reads them.
    KeyValue,
}

/// `spec.metrics.file`: a native sidecar follows a metrics file the trainer writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSpec {
    /// Absolute path of the file in the primary container, below a folder other than `/`
    /// (e.g. `/metrics/metrics.csv`); that folder is shared with the sidecar.
    pub path: String,
    /// `csv` (default, a header line names the columns), `jsonl` or `keyValue`.
    #[serde(default)]
    pub format: FileFormat,
    /// The column or key holding the step (default `step`). A record without it counts as
    /// the next step.
    #[serde(default = "default_step_key")]
    pub step_key: String,
}

/// `spec.metrics.tensorboard`: a native sidecar follows the TensorBoard event files the
/// trainer writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TensorboardSpec {
    /// Absolute path of the log directory in the primary container (e.g. `/logs`); event files
    /// (`*tfevents*`) in it and its subfolders are read. It is shared with the sidecar.
    pub dir: String,
    /// The scalar tag that carries the objective (default: the objective's metric name); the
    /// step is the event's step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl TensorboardSpec {
    /// The tag to read: `tag`, else the objective metric.
    pub fn tag_or<'a>(&'a self, metric: &'a str) -> &'a str {
        self.tag.as_deref().unwrap_or(metric)
    }
}

/// Checks a path shared with a sidecar: absolute, no `..`, in a folder other than `/`.
/// `field` names it in the message; `is_dir` says whether the path itself is the folder.
pub fn check_shared_path(field: &str, path: &str, is_dir: bool) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{field} must be an absolute path (got {path:?})"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{field} must not contain `..` (got {path:?})"));
    }
    let trimmed = path.trim_end_matches('/');
    let folder = if is_dir {
        trimmed
    } else {
        if path.ends_with('/') {
            return Err(format!(
                "{field} must name a file, not a folder (got {path:?})"
            ));
        }
        trimmed.rsplit_once('/').map_or("", |(d, _)| d)
    };
    if folder.is_empty() {
        return Err(format!(
            "{field} must sit in a folder other than / (got {path:?}): the folder is shared with the sidecar"
        ));
    }
    Ok(())
}

/// `spec.metrics`: exactly one of `logs`, `prometheus`, `push`, `file`, `tensorboard`.
/// Default: `logs` with defaults.
///
/// (De)serialized as a map with exactly one key (through [`MetricsSpecMap`], so that YAML
/// deserializers that want tags for enums also accept `{push: {}}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MetricsSpecMap", into = "MetricsSpecMap")]
pub enum MetricsSpec {
    Logs(LogsSpec),
    Prometheus(PrometheusSpec),
    Push(PushSpec),
    File(FileSpec),
    Tensorboard(TensorboardSpec),
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<TensorboardSpec>,
}

impl TryFrom<MetricsSpecMap> for MetricsSpec {
    type Error = String;
    fn try_from(m: MetricsSpecMap) -> Result<Self, String> {
        const ONE_OF: &str =
            "spec.metrics needs exactly one of logs, prometheus, push, file, tensorboard";
        match (m.logs, m.prometheus, m.push, m.file, m.tensorboard) {
            (Some(l), None, None, None, None) => Ok(MetricsSpec::Logs(l)),
            (None, Some(p), None, None, None) => Ok(MetricsSpec::Prometheus(p)),
            (None, None, Some(p), None, None) => Ok(MetricsSpec::Push(p)),
            (None, None, None, Some(f), None) => Ok(MetricsSpec::File(f)),
            (None, None, None, None, Some(t)) => Ok(MetricsSpec::Tensorboard(t)),
            (None, None, None, None, None) => Err(format!("{ONE_OF} (none given)")),
            _ => Err(ONE_OF.into()),
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
            MetricsSpec::File(f) => MetricsSpecMap {
                file: Some(f),
                ..Default::default()
            },
            MetricsSpec::Tensorboard(t) => MetricsSpecMap {
                tensorboard: Some(t),
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
    /// The source name used in telemetry labels: `logs`, `prometheus`, `push`, `file` or
    /// `tensorboard`.
    pub fn source(&self) -> &'static str {
        match self {
            MetricsSpec::Logs(_) => "logs",
            MetricsSpec::Prometheus(_) => "prometheus",
            MetricsSpec::Push(_) => "push",
            MetricsSpec::File(_) => "file",
            MetricsSpec::Tensorboard(_) => "tensorboard",
        }
    }

    /// Whether trials report through the push endpoint (the trainer itself, or the metrics
    /// sidecar for `file` and `tensorboard`), and so get a token.
    pub fn uses_push_endpoint(&self) -> bool {
        matches!(
            self,
            MetricsSpec::Push(_) | MetricsSpec::File(_) | MetricsSpec::Tensorboard(_)
        )
    }

    /// Checks what the schema cannot: the regex compiles and has a `value` group, the interval parses.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            MetricsSpec::Logs(l) => l.validate(),
            MetricsSpec::Prometheus(p) => {
                if p.url.trim().is_empty() {
                    return Err("spec.metrics.prometheus.url must not be empty".into());
                }
                match reqwest::Url::parse(p.url.trim()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
                    Ok(_) => {
                        return Err(format!(
                            "spec.metrics.prometheus.url {:?} must be an http:// or https:// URL with a host",
                            p.url
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "spec.metrics.prometheus.url {:?} is not a URL ({e}); e.g. http://prometheus.monitoring:9090",
                            p.url
                        ));
                    }
                }
                if p.value.trim().is_empty() {
                    return Err("spec.metrics.prometheus.value must not be empty".into());
                }
                p.interval().map(|_| ())
            }
            MetricsSpec::Push(_) => Ok(()),
            MetricsSpec::File(f) => {
                check_shared_path("spec.metrics.file.path", &f.path, false)?;
                if f.step_key.trim().is_empty() {
                    return Err("spec.metrics.file.stepKey must not be empty".into());
                }
                Ok(())
            }
            MetricsSpec::Tensorboard(t) => {
                check_shared_path("spec.metrics.tensorboard.dir", &t.dir, true)?;
                if t.tag.as_deref().is_some_and(|t| t.trim().is_empty()) {
                    return Err("spec.metrics.tensorboard.tag must not be empty".into());
                }
                Ok(())
            }
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

/// Hand-written so that the result is a Kubernetes *structural* schema: an object with five
/// optional properties and `minProperties`/`maxProperties` 1 (no `oneOf`, no `$ref`).
impl JsonSchema for MetricsSpec {
    fn schema_name() -> Cow<'static, str> {
        "MetricsSpec".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let logs = inline::<LogsSpec>(generator);
        let prometheus = inline::<PrometheusSpec>(generator);
        let push = inline::<PushSpec>(generator);
        let file = inline::<FileSpec>(generator);
        let tensorboard = inline::<TensorboardSpec>(generator);
        json_schema!({
            "description": "Where intermediate metrics come from: exactly one of logs (default), prometheus, push, file, tensorboard.",
            "type": "object",
            "properties": {
                "logs": logs,
                "prometheus": prometheus,
                "push": push,
                "file": file,
                "tensorboard": tensorboard,
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

    #[test]
    fn a_prometheus_url_must_be_http_with_a_host() {
        let check = |url: &str| {
            MetricsSpec::Prometheus(PrometheusSpec {
                url: url.into(),
                value: "val_loss".into(),
                step: None,
                interval: None,
                auth: None,
            })
            .validate()
        };
        assert!(check("http://prometheus.monitoring:9090").is_ok());
        assert!(check("https://prom.example.com/prefix").is_ok());
        for bad in [
            "prometheus:9090",
            "not a url",
            "ftp://p:21",
            "file:///tmp/x",
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.starts_with("spec.metrics.prometheus.url"), "{bad}: {e}");
        }
    }

    #[test]
    fn file_and_tensorboard_sources() {
        let m: MetricsSpec = serde_yaml::from_str("file: {path: /m/metrics.csv}").unwrap();
        assert_eq!(
            m,
            MetricsSpec::File(FileSpec {
                path: "/m/metrics.csv".into(),
                format: FileFormat::Csv,
                step_key: "step".into(),
            })
        );
        assert!(m.validate().is_ok() && m.uses_push_endpoint());
        let m: MetricsSpec = serde_yaml::from_str("tensorboard: {dir: /logs}").unwrap();
        let MetricsSpec::Tensorboard(t) = &m else {
            panic!()
        };
        assert_eq!(t.tag_or("val_loss"), "val_loss");
        assert_eq!(m.source(), "tensorboard");
        assert!(serde_yaml::from_str::<MetricsSpec>("{file: {path: /a/b}, push: {}}").is_err());
        assert!(serde_yaml::from_str::<MetricsSpec>("file: {path: /a/b, format: xml}").is_err());
        for (field, path, is_dir, err) in [
            ("f", "m.csv", false, Some("absolute")),
            ("f", "/m.csv", false, Some("folder other than /")),
            ("f", "/a/../b.csv", false, Some("..")),
            ("f", "/a/", false, Some("not a folder")),
            ("f", "/a/b.csv", false, None),
            ("d", "/", true, Some("folder other than /")),
            ("d", "/logs/", true, None),
        ] {
            let got = check_shared_path(field, path, is_dir);
            match err {
                None => assert!(got.is_ok(), "{path}: {got:?}"),
                Some(e) => {
                    let msg = got.unwrap_err();
                    assert!(msg.contains(e) && msg.starts_with(field), "{path}: {msg}");
                }
            }
        }
    }
}
