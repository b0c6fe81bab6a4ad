//! The log-line parser shared by the operator's log follower and `lopper run`.
//!
//! Pure: no I/O, no clock. [`LineParser`] turns lines into `(step, value)` observations of the
//! objective metric, enforcing the step rules:
//! - a line without the step key counts as the next step (last recorded step + 1, or 0);
//! - a repeated or lower step is ignored (as Optuna ignores a second report of a step);
//! - NaN and ±inf are kept (Optuna records both); negative steps and unparsable values are
//!   ignored (debug log).
//!
//! [`LineBuffer`] splits a byte stream (arbitrary chunks, possibly cut inside a UTF-8 character)
//! into lines, with `\n`, `\r\n` and bare `\r` (progress bars) as terminators and a cap on the
//! length of one line.

use std::sync::LazyLock;

use regex::Regex;

pub use crate::metrics::spec::{LogFormat, LogsSpec};

/// Lines longer than this (bytes) are ignored by [`LineParser::feed`] and cut by [`LineBuffer`].
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a [`LogsSpec`] cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("spec.metrics.logs.pattern is required for format regex")]
    MissingPattern,
    #[error("spec.metrics.logs.pattern is not a valid regular expression: {0}")]
    BadPattern(String),
    #[error("spec.metrics.logs.pattern needs a named group `value` (e.g. `loss: (?P<value>\\S+)`)")]
    NoValueGroup,
    #[error("spec.metrics.logs.stepKey must not be empty")]
    EmptyStepKey,
}

/// One parsed line, before the step rules: the step when the line names one, and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawObservation {
    pub step: Option<i64>,
    pub value: f64,
}

#[derive(Debug, Clone)]
enum Matcher {
    KeyValue,
    Json,
    Regex(Regex),
}

/// Stateful parser of one trial's log.
#[derive(Debug, Clone)]
pub struct LineParser {
    matcher: Matcher,
    step_key: String,
    metric: String,
    last_step: Option<i64>,
}

static KV: LazyLock<Regex> = LazyLock::new(|| {
    // key: word characters plus `.`, `-`, `/`; value: up to whitespace, `,` or `;`.
    Regex::new(r"([\w.\-/]+)[ \t]*=[ \t]*([^\s,;=]+)").expect("static regex")
});
static ANSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]").expect("static regex"));

impl LineParser {
    /// A parser for `objective_metric` in the format of `spec`.
    pub fn new(spec: &LogsSpec, objective_metric: &str) -> Result<Self, SpecError> {
        let matcher = match spec.format {
            LogFormat::KeyValue => Matcher::KeyValue,
            LogFormat::Json => Matcher::Json,
            LogFormat::Regex => {
                let pattern = spec.pattern.as_deref().ok_or(SpecError::MissingPattern)?;
                let re = Regex::new(pattern).map_err(|e| SpecError::BadPattern(e.to_string()))?;
                if !re.capture_names().flatten().any(|n| n == "value") {
                    return Err(SpecError::NoValueGroup);
                }
                Matcher::Regex(re)
            }
        };
        if spec.step_key.trim().is_empty() && spec.format != LogFormat::Regex {
            return Err(SpecError::EmptyStepKey);
        }
        Ok(LineParser {
            matcher,
            step_key: spec.step_key.clone(),
            metric: objective_metric.to_string(),
            last_step: None,
        })
    }

    /// The last recorded step, if any.
    pub fn last_step(&self) -> Option<i64> {
        self.last_step
    }

    /// Resume after `step` (e.g. the last step already in `Trial.status.intermediate`): lines
    /// at or below it are ignored and a line without a step key counts as `step + 1`.
    pub fn resume_after(&mut self, step: Option<i64>) {
        self.last_step = match (self.last_step, step) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Feeds one line (without its terminator); returns the observation to record, if any.
    pub fn feed(&mut self, line: &str) -> Option<(i64, f64)> {
        let raw = self.parse(line)?;
        let step = match raw.step {
            Some(s) => s,
            None => self.last_step.map_or(0, |s| s.saturating_add(1)),
        };
        if let Some(last) = self.last_step
            && step <= last
        {
            tracing::debug!(step, last, "log metrics: repeated or lower step ignored");
            return None;
        }
        self.last_step = Some(step);
        Some((step, raw.value))
    }

    /// Parses one line without applying the step rules. `None` when the line has no usable
    /// objective value (absent, ±inf, garbage) or a bad step.
    pub fn parse(&self, line: &str) -> Option<RawObservation> {
        if line.len() > MAX_LINE_BYTES {
            tracing::debug!(len = line.len(), "log metrics: line too long, ignored");
            return None;
        }
        let cleaned;
        let line = if line.contains('\x1b') {
            cleaned = ANSI.replace_all(line, "");
            cleaned.as_ref()
        } else {
            line
        };
        let (step, value) = match &self.matcher {
            Matcher::KeyValue => self.parse_key_value(line)?,
            Matcher::Json => self.parse_json(line)?,
            Matcher::Regex(re) => {
                let caps = re.captures(line)?;
                let value = caps.name("value")?.as_str();
                (
                    caps.name("step").map(|m| m.as_str().to_string()),
                    value.to_string(),
                )
            }
        };
        let value = match parse_value(&value) {
            Some(v) => v,
            None => {
                tracing::debug!(metric = %self.metric, value = %value, "log metrics: value ignored (not a number)");
                return None;
            }
        };
        let step = match step {
            None => None,
            Some(s) => match parse_step(&s) {
                Some(s) => Some(s),
                None => {
                    tracing::debug!(step = %s, "log metrics: line ignored, bad step");
                    return None;
                }
            },
        };
        Some(RawObservation { step, value })
    }

    fn parse_key_value(&self, line: &str) -> Option<(Option<String>, String)> {
        let mut value = None;
        let mut step = None;
        for caps in KV.captures_iter(line) {
            let key = caps.get(1).map_or("", |m| m.as_str());
            let v = caps.get(2).map_or("", |m| m.as_str());
            if key == self.metric && value.is_none() {
                value = Some(v.to_string());
            } else if key == self.step_key && step.is_none() {
                step = Some(v.to_string());
            }
        }
        Some((step, value?))
    }

    fn parse_json(&self, line: &str) -> Option<(Option<String>, String)> {
        let t = line.trim();
        let start = t.find('{')?;
        let t = &t[start..];
        if !t.ends_with('}') {
            return None;
        }
        let obj: serde_json::Value = match serde_json::from_str(t) {
            Ok(v) => v,
            // Python's json.dumps writes bare NaN / Infinity: quote them and retry.
            Err(_) => serde_json::from_str(&quote_non_finite(t)).ok()?,
        };
        let obj = obj.as_object()?;
        let get = |key: &str| -> Option<String> {
            let v = obj.get(key).or_else(|| {
                // dotted path into nested objects: "metrics.val_loss"
                let mut cur: Option<&serde_json::Value> = None;
                for (i, part) in key.split('.').enumerate() {
                    cur = if i == 0 {
                        obj.get(part)
                    } else {
                        cur?.as_object()?.get(part)
                    };
                }
                if key.contains('.') { cur } else { None }
            })?;
            match v {
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::String(s) => Some(s.clone()),
                _ => Some(String::new()),
            }
        };
        let value = get(&self.metric)?;
        Some((get(&self.step_key), value))
    }
}

/// A metric value: a float, NaN and ±inf kept, garbage rejected.
pub(crate) fn parse_value(s: &str) -> Option<f64> {
    let s = s
        .trim()
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '(' | ')' | '[' | ']' | '{' | '}'));
    s.parse().ok()
}

/// A step: a non-negative integer (also `3.0`; a fractional or negative step is rejected).
pub(crate) fn parse_step(s: &str) -> Option<i64> {
    let s = s
        .trim()
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '(' | ')' | '[' | ']' | '{' | '}'));
    if let Ok(i) = s.parse::<i64>() {
        return (i >= 0).then_some(i);
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15).then_some(f as i64)
}

/// Quotes the bare tokens `NaN`, `Infinity` and `-Infinity` that appear outside strings.
fn quote_non_finite(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let mut matched = false;
        for tok in ["-Infinity", "Infinity", "NaN"] {
            if rest.starts_with(tok) {
                out.push('"');
                out.push_str(tok);
                out.push('"');
                rest = &rest[tok.len()..];
                matched = true;
                break;
            }
        }
        if matched {
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Splits a byte stream into lines. Terminators: `\n`, `\r\n`, `\r`. A partial line is kept until
/// its terminator arrives (or [`LineBuffer::finish`]); a line longer than `max` bytes is cut to its
/// first `max` bytes and the rest up to the terminator dropped. Invalid UTF-8 is replaced.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    overflow: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new(MAX_LINE_BYTES)
    }
}

impl LineBuffer {
    pub fn new(max: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            max: max.max(1),
            overflow: false,
        }
    }

    /// Appends a chunk; returns the lines it completed (empty lines omitted).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in chunk {
            if b == b'\n' || b == b'\r' {
                self.flush_into(&mut lines);
            } else if self.buf.len() < self.max {
                self.buf.push(b);
            } else if !self.overflow {
                self.overflow = true;
                tracing::debug!(max = self.max, "log line longer than the limit, cut");
            }
        }
        lines
    }

    /// The last line if the stream ended without a terminator.
    pub fn finish(&mut self) -> Option<String> {
        let mut lines = Vec::new();
        self.flush_into(&mut lines);
        lines.pop()
    }

    /// Bytes of the pending partial line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn flush_into(&mut self, lines: &mut Vec<String>) {
        self.overflow = false;
        if self.buf.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.buf);
        let line = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        lines.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(metric: &str) -> LineParser {
        LineParser::new(&LogsSpec::default(), metric).unwrap()
    }

    #[test]
    fn key_value_any_order_and_noise() {
        let mut p = LineParser::new(
            &LogsSpec {
                step_key: "epoch".into(),
                ..Default::default()
            },
            "val_loss",
        )
        .unwrap();
        assert_eq!(
            p.feed("INFO epoch=3 val_loss=0.41 val_acc=0.88"),
            Some((3, 0.41))
        );
        assert_eq!(
            p.feed("val_acc=0.9, val_loss = 0.3, epoch=4"),
            Some((4, 0.3))
        );
        assert_eq!(p.feed("my_val_loss=0.1 epoch=5"), None);
        assert_eq!(p.feed("nothing here"), None);
    }

    #[test]
    fn step_rules() {
        let mut p = kv("loss");
        assert_eq!(p.feed("loss=1.0"), Some((0, 1.0)));
        assert_eq!(p.feed("loss=0.9"), Some((1, 0.9)));
        assert_eq!(p.feed("step=1 loss=0.1"), None);
        assert_eq!(p.feed("step=0 loss=0.1"), None);
        assert_eq!(p.feed("step=5 loss=0.5"), Some((5, 0.5)));
        // A diverged loss is a value (Optuna records it; a threshold pruner stops it).
        assert_eq!(p.feed("loss=inf"), Some((6, f64::INFINITY)));
        assert_eq!(p.feed("loss=-inf"), Some((7, f64::NEG_INFINITY)));
        assert_eq!(p.feed("loss=abc"), None);
        assert_eq!(p.feed("step=-1 loss=0.2"), None);
        assert_eq!(p.feed("step=8.5 loss=0.2"), None);
        let (s, v) = p.feed("loss=nan").unwrap();
        assert_eq!(s, 8);
        assert!(v.is_nan());
        assert_eq!(p.feed("step=9.0 loss=0.2"), Some((9, 0.2)));
        assert_eq!(p.last_step(), Some(9));
    }

    #[test]
    fn json_lines() {
        let spec = LogsSpec {
            format: LogFormat::Json,
            step_key: "epoch".into(),
            pattern: None,
        };
        let mut p = LineParser::new(&spec, "val_loss").unwrap();
        assert_eq!(p.feed(r#"{"epoch": 0, "val_loss": 0.5}"#), Some((0, 0.5)));
        assert_eq!(p.feed(r#"not json"#), None);
        assert_eq!(p.feed(r#"{"val_loss": 0.4}"#), Some((1, 0.4)));
        let (s, v) = p
            .feed(r#"{"epoch": 2, "val_loss": NaN, "s": "NaN"}"#)
            .unwrap();
        assert_eq!(s, 2);
        assert!(v.is_nan());
        assert_eq!(
            p.feed(r#"{"epoch": 3, "val_loss": Infinity}"#),
            Some((3, f64::INFINITY))
        );
        assert_eq!(
            p.feed(r#"2024-01-01 {"epoch": "4", "val_loss": "0.25"}"#),
            Some((4, 0.25))
        );
        let mut p = LineParser::new(&spec, "metrics.val_loss").unwrap();
        assert_eq!(
            p.feed(r#"{"epoch": 1, "metrics": {"val_loss": 0.7}}"#),
            Some((1, 0.7))
        );
    }

    #[test]
    fn regex_format() {
        let spec = LogsSpec {
            format: LogFormat::Regex,
            step_key: String::new(),
            pattern: Some(r"Epoch (?P<step>\d+).*loss: (?P<value>\S+)".into()),
        };
        let mut p = LineParser::new(&spec, "whatever").unwrap();
        assert_eq!(p.feed("Epoch 2/10 - loss: 0.33"), Some((2, 0.33)));
        assert_eq!(
            LineParser::new(
                &LogsSpec {
                    pattern: Some("(?P<step>x)".into()),
                    ..spec.clone()
                },
                "m"
            )
            .unwrap_err(),
            SpecError::NoValueGroup
        );
        assert!(matches!(
            LineParser::new(
                &LogsSpec {
                    pattern: Some("(".into()),
                    ..spec.clone()
                },
                "m"
            ),
            Err(SpecError::BadPattern(_))
        ));
        assert_eq!(
            LineParser::new(
                &LogsSpec {
                    pattern: None,
                    ..spec
                },
                "m"
            )
            .unwrap_err(),
            SpecError::MissingPattern
        );
    }

    #[test]
    fn ansi_and_resume() {
        let mut p = kv("loss");
        p.resume_after(Some(4));
        assert_eq!(p.feed("\x1b[32mloss=0.5\x1b[0m"), Some((5, 0.5)));
    }

    #[test]
    fn line_buffer_splits_utf8_and_terminators() {
        let text = "é=1 loss=0.5\r\nprogress 10%\rprogress 20%\nlast ünï";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut b = LineBuffer::default();
            let mut lines = b.push(&bytes[..cut]);
            lines.extend(b.push(&bytes[cut..]));
            lines.extend(b.finish());
            assert_eq!(
                lines,
                vec!["é=1 loss=0.5", "progress 10%", "progress 20%", "last ünï"]
            );
        }
        let mut b = LineBuffer::new(4);
        assert_eq!(b.push(b"abcdefg\nxy\n"), vec!["abcd", "xy"]);
    }

    #[test]
    fn quote_tokens() {
        assert_eq!(
            quote_non_finite(r#"{"a": NaN, "b": "NaN", "c": -Infinity}"#),
            r#"{"a": "NaN", "b": "NaN", "c": "-Infinity"}"#
        );
    }
}
