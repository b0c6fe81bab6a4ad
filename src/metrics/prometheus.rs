//! The `prometheus` metric source: PromQL instant queries for a study's running trials.
//!
//! Templates get `{{trial}}`, `{{study}}` and `{{namespace}}` substituted. When every
//! `{{trial}}` of a template sits in one label matcher (`trial="{{trial}}"`), the trials of the
//! study are batched into one query with a regex matcher (`trial=~"a|b|c"`) and the answer is
//! split by that label; otherwise each trial gets its own query.
//!
//! A new point is recorded when the step series advances (with `step`), or when the sample
//! timestamp of the value advances (without `step`: `timestamp(<value>)` is queried too).
//! Prometheus unreachable, an error answer or a running trial without a series for
//! [`ABSENT_POLLS`] polls: nothing is recorded (no pruning on missing data), the Study gets the
//! condition `MetricsUnavailable=True` with the error, polls back off (up to 8× the interval)
//! and the condition turns `False` once queries work again.
//!
//! The URL is the Study author's choice, so the client trusts nothing of the answer: it reads at
//! most [`MAX_BODY_BYTES`], the whole query (connection, answer and body) is bounded by one
//! timeout, redirects are followed only to the same scheme, host and port, and the condition's
//! message says what went wrong without repeating any text of the answer ([`PromError`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;

use super::spec::PrometheusSpec;
use super::telemetry;

/// Polls a running trial may go without a series before the study is marked.
pub const ABSENT_POLLS: u32 = 5;

/// The Study condition type set while metrics cannot be read.
pub const CONDITION: &str = "MetricsUnavailable";

/// Credentials for Prometheus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

/// The label a Secret must carry, with the value `"true"`, to serve as Prometheus credentials.
///
/// Whoever may create a Study could otherwise name any Secret of the namespace and have the
/// operator send it to a URL of their choosing. Setting a label needs write access to the
/// Secret, so only its owner can offer it (RBAC cannot restrict the operator's `get` by name).
pub const AUTH_OPT_IN_LABEL: &str = "lopper.dev/prometheus-auth";

impl Auth {
    /// From a Secret: it must opt in with [`AUTH_OPT_IN_LABEL`]`: "true"`, then its data is
    /// read as [`Auth::from_secret_data`] reads it.
    pub fn from_secret(
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Auth, String> {
        if labels
            .and_then(|l| l.get(AUTH_OPT_IN_LABEL))
            .map(String::as_str)
            != Some("true")
        {
            return Err(format!(
                "auth Secret {name} lacks the label {AUTH_OPT_IN_LABEL}=true (its owner opts in by \
                 labelling it: kubectl label secret {name} {AUTH_OPT_IN_LABEL}=true)"
            ));
        }
        Self::from_secret_data(data).map_err(|e| format!("auth Secret {name}: {e}"))
    }

    /// From a Secret's data: `token` (bearer) or `username` + `password` (basic).
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Auth, String> {
        let get = |k: &str| {
            data.get(k)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
        };
        if let Some(t) = get("token") {
            return Ok(Auth::Bearer(t));
        }
        match (get("username"), get("password")) {
            (Some(username), Some(password)) => Ok(Auth::Basic { username, password }),
            _ => Err("the auth Secret needs `token`, or `username` and `password`".into()),
        }
    }
}

/// The largest Prometheus answer read, in bytes.
///
/// The Study's author picks the URL, so the answer may come from anything; an instant query
/// for one study's running trials is a few kilobytes, and every study polls at once, so a
/// server that answers with an endless or huge body must not grow the operator's memory.
pub const MAX_BODY_BYTES: u64 = 8 << 20;

/// Redirects followed per query, and only to the scheme, host and port of the URL asked.
pub const MAX_REDIRECTS: usize = 3;

/// Why a query failed.
///
/// The message goes into the Study's status, which its author can read, and the author picks
/// the URL: it says what happened (status code, size, time) but never carries text of the
/// answer, which could be an internal service's (details go to the debug log only). Every
/// text below is fixed here, none comes from the server.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PromError {
    /// No answer: DNS, connection or TLS failure.
    #[error("prometheus unreachable at {url}: {cause}")]
    Unreachable { url: String, cause: &'static str },
    /// No whole answer (connection, headers and body) within the timeout.
    #[error("prometheus at {url}: timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    /// A redirect that is not followed.
    #[error("prometheus at {url}: {reason}")]
    RedirectRefused {
        url: String,
        reason: RedirectRefusal,
    },
    /// An HTTP error status, or a Prometheus `"status": "error"` answer (with its
    /// `errorType` when it is one Prometheus documents).
    #[error("prometheus answered HTTP {status}{}", .error_type.map(|t| format!(" ({t})")).unwrap_or_default())]
    Answer {
        status: u16,
        error_type: Option<&'static str>,
    },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("prometheus answer: body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The body is not a Prometheus instant-query answer.
    #[error("unexpected prometheus answer: {0}")]
    Decode(&'static str),
}

impl PromError {
    /// A reason for the Study's condition (CamelCase).
    pub fn reason(&self) -> &'static str {
        match self {
            PromError::Unreachable { .. } => "PrometheusUnreachable",
            PromError::Timeout { .. } => "PrometheusTimeout",
            PromError::RedirectRefused { .. } => "RedirectRefused",
            PromError::TooLarge { .. } => "AnswerTooLarge",
            PromError::Answer { .. } | PromError::Decode(_) => "QueryFailed",
        }
    }
}

/// Why a redirect is not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefusal {
    #[error("redirect to another host refused (only the same scheme, host and port are followed)")]
    OtherHost,
    #[error(
        "redirect to another scheme refused (only the same scheme, host and port are followed)"
    )]
    OtherScheme,
    #[error("more than {MAX_REDIRECTS} redirects refused")]
    TooMany,
}

/// Whether a redirect to `next` may be followed, `previous` being the URLs requested so far
/// (the first is the one asked).
pub fn check_redirect(
    next: &reqwest::Url,
    previous: &[reqwest::Url],
) -> Result<(), RedirectRefusal> {
    let Some(first) = previous.first() else {
        return Err(RedirectRefusal::OtherHost);
    };
    if previous.len() > MAX_REDIRECTS {
        return Err(RedirectRefusal::TooMany);
    }
    if next.scheme() != first.scheme() {
        return Err(RedirectRefusal::OtherScheme);
    }
    if next.host_str() != first.host_str()
        || next.port_or_known_default() != first.port_or_known_default()
    {
        return Err(RedirectRefusal::OtherHost);
    }
    Ok(())
}

/// One series of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    /// Evaluation (or, for `timestamp()`, sample) time, seconds.
    pub ts: f64,
    pub value: f64,
}

/// A small Prometheus HTTP API client (instant queries).
#[derive(Clone, Debug)]
pub struct PromClient {
    http: reqwest::Client,
    base: String,
    /// `base` without credentials, for messages.
    shown: String,
    auth: Option<Auth>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

impl PromClient {
    /// A client for the Prometheus at `base`. `timeout` bounds each whole query: connecting,
    /// waiting for the answer and reading its body (a server that trickles bytes is cut off).
    pub fn new(base: &str, auth: Option<Auth>, timeout: Duration) -> Result<Self, String> {
        super::server::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::custom(
                |attempt| match check_redirect(attempt.url(), attempt.previous()) {
                    Ok(()) => attempt.follow(),
                    Err(refusal) => attempt.error(refusal),
                },
            ))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let base = base.trim_end_matches('/').to_string();
        let shown = match reqwest::Url::parse(&base) {
            Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.as_str().trim_end_matches('/').to_string()
            }
            _ => base.clone(),
        };
        Ok(PromClient {
            http,
            base,
            shown,
            auth,
            timeout,
        })
    }

    /// Runs an instant query; a scalar answer becomes one sample without labels.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, PromError> {
        let started = Instant::now();
        let r = match tokio::time::timeout(self.timeout, self.fetch(promql)).await {
            Ok(Ok((status, body))) => parse_answer(status, &body),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.timed_out()),
        };
        telemetry::telemetry()
            .query_duration
            .with_label_values(&[if r.is_ok() { "ok" } else { "error" }])
            .observe(started.elapsed().as_secs_f64());
        r
    }

    fn timed_out(&self) -> PromError {
        PromError::Timeout {
            url: self.shown.clone(),
            after: self.timeout,
        }
    }

    /// Sends the query and reads the body, at most [`MAX_BODY_BYTES`] of it.
    async fn fetch(&self, promql: &str) -> Result<(u16, Vec<u8>), PromError> {
        let url = format!("{}/api/v1/query", self.base);
        let mut req = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(format!("query={}", form_encode(promql)));
        match &self.auth {
            Some(Auth::Basic { username, password }) => {
                req = req.basic_auth(username, Some(password))
            }
            Some(Auth::Bearer(t)) => req = req.bearer_auth(t),
            None => {}
        }
        let mut resp = req.send().await.map_err(|e| self.request_error(&e))?;
        let status = resp.status().as_u16();
        let too_large = |read: u64| {
            tracing::debug!(url = %self.shown, status, read, "prometheus answer too large");
            PromError::TooLarge {
                limit: MAX_BODY_BYTES,
            }
        };
        let declared = resp.content_length();
        if let Some(n) = declared
            && n > MAX_BODY_BYTES
        {
            return Err(too_large(0));
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(64 << 10) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.request_error(&e))? {
            if (body.len() + chunk.len()) as u64 > MAX_BODY_BYTES {
                return Err(too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// A failed request, named by what happened; the error's own text (which can hold a URL
    /// from a redirect) goes to the debug log only.
    fn request_error(&self, e: &reqwest::Error) -> PromError {
        tracing::debug!(url = %self.shown, error = %truncated(&error_chain(e)), "prometheus request failed");
        if let Some(reason) = find_cause::<RedirectRefusal>(e) {
            return PromError::RedirectRefused {
                url: self.shown.clone(),
                reason: *reason,
            };
        }
        let io_kind = find_cause::<std::io::Error>(e).map(std::io::Error::kind);
        if e.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
            return self.timed_out();
        }
        let cause = if find_cause::<rustls::Error>(e).is_some() {
            "TLS handshake failed"
        } else if e.is_redirect() {
            "redirect failed"
        } else if e.is_dns() {
            "DNS lookup failed"
        } else if e.is_connect() {
            match io_kind {
                Some(std::io::ErrorKind::ConnectionRefused) => "connection refused",
                Some(std::io::ErrorKind::ConnectionReset) => "connection reset",
                Some(std::io::ErrorKind::HostUnreachable) => "host unreachable",
                Some(std::io::ErrorKind::NetworkUnreachable) => "network unreachable",
                _ => "connection failed",
            }
        } else if e.is_body() || e.is_decode() {
            "connection broken while reading the answer"
        } else if e.is_builder() {
            "invalid URL"
        } else {
            "request failed"
        };
        PromError::Unreachable {
            url: self.shown.clone(),
            cause,
        }
    }
}

/// The first error of type `T` in `e`'s chain (looking inside `std::io::Error`s too).
fn find_cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(t) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<T>())
        {
            return Some(t);
        }
        cur = c.source();
    }
    None
}

/// At most 200 characters of `s`, for the debug log.
fn truncated(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// The `errorType`s the Prometheus HTTP API documents; any other is not repeated.
fn known_error_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "bad_data" => "bad_data",
        "timeout" => "timeout",
        "canceled" => "canceled",
        "execution" => "execution",
        "internal" => "internal",
        "unavailable" => "unavailable",
        "not_found" => "not_found",
        "not_acceptable" => "not_acceptable",
        _ => return None,
    })
}

/// The samples of an instant-query answer with HTTP `status` and `body`.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Vec<Sample>, PromError> {
    let log = |what: &str| {
        tracing::debug!(status, body = ?truncated(&String::from_utf8_lossy(body)), "{what}");
    };
    let answer: ApiAnswer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(_) => {
            log("prometheus answer is not Prometheus JSON");
            return Err(if status >= 300 {
                PromError::Answer {
                    status,
                    error_type: None,
                }
            } else {
                PromError::Decode("body is not Prometheus JSON")
            });
        }
    };
    if answer.status != "success" || status >= 300 {
        log("prometheus answered an error");
        return Err(PromError::Answer {
            status,
            error_type: answer.error_type.as_deref().and_then(known_error_type),
        });
    }
    let bad = |_| {
        log("prometheus result of an unexpected shape");
        PromError::Decode("the result is not an instant vector or scalar of the usual form")
    };
    let data = answer
        .data
        .ok_or(PromError::Decode("the answer has no data"))?;
    match data.result_type.as_str() {
        "vector" => {
            let items: Vec<VectorItem> = serde_json::from_value(data.result).map_err(bad)?;
            Ok(items
                .into_iter()
                .map(|i| Sample {
                    labels: i.metric,
                    ts: i.value.0,
                    value: parse_prom_float(&i.value.1),
                })
                .collect())
        }
        "scalar" => {
            let (ts, v): (f64, String) = serde_json::from_value(data.result).map_err(bad)?;
            Ok(vec![Sample {
                labels: BTreeMap::new(),
                ts,
                value: parse_prom_float(&v),
            }])
        }
        "matrix" => Err(PromError::Decode(
            "result type matrix (an instant vector or scalar is needed)",
        )),
        "string" => Err(PromError::Decode(
            "result type string (an instant vector or scalar is needed)",
        )),
        _ => Err(PromError::Decode(
            "unknown result type (an instant vector or scalar is needed)",
        )),
    }
}

/// `application/x-www-form-urlencoded` encoding of a value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn parse_prom_float(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}

/// Substitutes `{{trial}}`, `{{study}}`, `{{namespace}}` (spaces inside the braces allowed).
pub fn render(template: &str, trial: &str, study: &str, namespace: &str) -> String {
    static VAR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\{\{\s*(trial|study|namespace)\s*\}\}").expect("regex"));
    VAR.replace_all(template, |c: &regex::Captures| match &c[1] {
        "trial" => trial.to_string(),
        "study" => study.to_string(),
        _ => namespace.to_string(),
    })
    .into_owned()
}

/// One query to run and how to map its series to trials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedQuery {
    pub promql: String,
    /// Batched: the label whose value names the trial. `None`: the query is for `trials[0]` alone.
    pub label: Option<String>,
    pub trials: Vec<String>,
}

/// Plans the queries of `template` for `trials`: one batched query when possible.
pub fn plan(template: &str, trials: &[String], study: &str, namespace: &str) -> Vec<PlannedQuery> {
    static MATCHER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"\{\{\s*trial\s*\}\}""#).expect("regex")
    });
    static ANY_TRIAL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\{\{\s*trial\s*\}\}").expect("regex"));
    if trials.is_empty() {
        return Vec::new();
    }
    let all = ANY_TRIAL.find_iter(template).count();
    let matchers: Vec<_> = MATCHER.captures_iter(template).collect();
    let labels: Vec<&str> = matchers
        .iter()
        .map(|c| c.get(1).map_or("", |m| m.as_str()))
        .collect();
    let batchable = all == 0
        || (!labels.is_empty() && labels.len() == all && labels.iter().all(|l| *l == labels[0]));
    if all == 0 {
        // Not per trial: one query, the same answer for every trial is meaningless unless the
        // series carry a `trial` label; map by that label.
        return vec![PlannedQuery {
            promql: render(template, "", study, namespace),
            label: Some("trial".into()),
            trials: trials.to_vec(),
        }];
    }
    if batchable && trials.len() > 1 {
        let label = labels[0].to_string();
        let alternation = trials
            .iter()
            .map(|t| promql_regex_escape(t))
            .collect::<Vec<_>>()
            .join("|");
        let promql = MATCHER
            .replace_all(template, |c: &regex::Captures| {
                format!("{}=~\"{}\"", &c[1], alternation)
            })
            .into_owned();
        return vec![PlannedQuery {
            promql: render(&promql, "", study, namespace),
            label: Some(label),
            trials: trials.to_vec(),
        }];
    }
    trials
        .iter()
        .map(|t| PlannedQuery {
            promql: render(template, t, study, namespace),
            label: None,
            trials: vec![t.clone()],
        })
        .collect()
}

/// Escapes a literal for an RE2 regex inside a PromQL double-quoted string.
fn promql_regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else {
            // `\\.` in PromQL source is `\.` in the regex.
            out.push_str("\\\\");
            out.push(c);
        }
    }
    out
}

/// Runs the planned queries and returns, per trial, its sample (the newest if several).
pub async fn query_trials(
    client: &PromClient,
    template: &str,
    trials: &[String],
    study: &str,
    namespace: &str,
) -> Result<HashMap<String, Sample>, PromError> {
    let mut out: HashMap<String, Sample> = HashMap::new();
    for q in plan(template, trials, study, namespace) {
        let samples = client.query(&q.promql).await?;
        for s in samples {
            let trial = match &q.label {
                Some(l) => match s.labels.get(l) {
                    Some(t) if q.trials.contains(t) => t.clone(),
                    _ => continue,
                },
                None => q.trials[0].clone(),
            };
            match out.get(&trial) {
                Some(prev) if prev.ts >= s.ts => {}
                _ => {
                    out.insert(trial, s);
                }
            }
        }
    }
    Ok(out)
}

/// Per-trial progress of the poller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cursor {
    pub last_step: Option<i64>,
    pub last_sample_ts: Option<f64>,
    pub misses: u32,
}

impl Cursor {
    /// The point to record from one poll's `value` and `step` (or value-timestamp) samples.
    pub fn advance(
        &mut self,
        value: f64,
        step: Option<f64>,
        sample_ts: Option<f64>,
    ) -> Option<(i64, f64)> {
        self.misses = 0;
        let step = match step {
            Some(s) => {
                if !s.is_finite() || !(0.0..=9.0e15).contains(&s) {
                    return None;
                }
                s.floor() as i64
            }
            None => {
                let ts = sample_ts?;
                if self.last_sample_ts.is_some_and(|last| ts <= last) {
                    return None;
                }
                self.last_sample_ts = Some(ts);
                self.last_step.map_or(0, |s| s + 1)
            }
        };
        if self.last_step.is_some_and(|last| step <= last) {
            return None;
        }
        if value.is_infinite() {
            tracing::debug!(step, "prometheus metrics: infinite value ignored");
            return None;
        }
        self.last_step = Some(step);
        Some((step, value))
    }
}

/// One poll: what to record, and which trials are missing data.
#[derive(Debug, Default)]
pub struct PollResult {
    pub points: Vec<(String, (i64, f64))>,
    pub absent: Vec<String>,
}

/// Polls once for `trials`, updating `cursors` (created on demand, dropped for gone trials).
pub async fn poll_once(
    client: &PromClient,
    spec: &PrometheusSpec,
    trials: &[String],
    study: &str,
    namespace: &str,
    cursors: &mut HashMap<String, Cursor>,
) -> Result<PollResult, PromError> {
    cursors.retain(|k, _| trials.contains(k));
    let values = query_trials(client, &spec.value, trials, study, namespace).await?;
    let steps = match &spec.step {
        Some(t) => Some(query_trials(client, t, trials, study, namespace).await?),
        None => None,
    };
    let stamps = if spec.step.is_none() {
        let t = format!("timestamp({})", spec.value);
        Some(query_trials(client, &t, trials, study, namespace).await?)
    } else {
        None
    };
    let mut res = PollResult::default();
    for t in trials {
        let c = cursors.entry(t.clone()).or_default();
        let v = values.get(t);
        let s = steps.as_ref().map(|m| m.get(t));
        match (v, s) {
            (None, _) | (Some(_), Some(None)) => {
                c.misses += 1;
                if c.misses >= ABSENT_POLLS {
                    res.absent.push(t.clone());
                }
            }
            (Some(v), s) => {
                let step = s.flatten().map(|x| x.value);
                let ts = stamps.as_ref().and_then(|m| m.get(t)).map(|x| x.value);
                if let Some(p) = c.advance(v.value, step, ts) {
                    res.points.push((t.clone(), p));
                }
            }
        }
    }
    Ok(res)
}

/// The delay before the next poll after `failures` consecutive failures.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let factor = 1u32 << failures.min(3);
    (interval * factor).min(interval.max(Duration::from_secs(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn render_and_plan() {
        assert_eq!(
            render(
                r#"loss{trial="{{trial}}",study="{{ study }}",ns="{{namespace}}"}"#,
                "t-1",
                "s",
                "n"
            ),
            r#"loss{trial="t-1",study="s",ns="n"}"#
        );
        let p = plan(
            r#"val_loss{trial="{{trial}}", study="{{study}}"}"#,
            &names(&["s-0", "s-1.x"]),
            "s",
            "ns",
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].promql, r#"val_loss{trial=~"s-0|s-1\\.x", study="s"}"#);
        assert_eq!(p[0].label.as_deref(), Some("trial"));
        // aggregated away or used twice with different labels: one query per trial
        let p = plan(
            r#"max(loss{a="{{trial}}"}) + on() x{b="{{trial}}"}"#,
            &names(&["t1", "t2"]),
            "s",
            "n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].promql, r#"max(loss{a="t2"}) + on() x{b="t2"}"#);
        assert_eq!(p[1].label, None);
    }

    #[test]
    fn cursor_rules() {
        let mut c = Cursor::default();
        assert_eq!(c.advance(0.9, Some(0.0), None), Some((0, 0.9)));
        assert_eq!(c.advance(0.8, Some(0.0), None), None);
        assert_eq!(c.advance(0.8, Some(2.0), None), Some((2, 0.8)));
        assert_eq!(c.advance(f64::INFINITY, Some(3.0), None), None);
        let (s, v) = c.advance(f64::NAN, Some(3.0), None).unwrap();
        assert!(s == 3 && v.is_nan());
        let mut c = Cursor::default();
        assert_eq!(c.advance(0.5, None, Some(10.0)), Some((0, 0.5)));
        assert_eq!(c.advance(0.5, None, Some(10.0)), None);
        assert_eq!(c.advance(0.4, None, Some(11.0)), Some((1, 0.4)));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let i = Duration::from_secs(1);
        assert_eq!(backoff(i, 0), i);
        assert_eq!(backoff(i, 1), Duration::from_secs(2));
        assert_eq!(backoff(i, 10), Duration::from_secs(8));
    }

    const SECRET: &str = "SECRET-INTERNAL-TEXT";

    #[test]
    fn answers_are_parsed_and_errors_never_repeat_the_body() {
        let ok = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"trial":"t"},"value":[12.5,"0.25"]}]}}"#;
        let s = parse_answer(200, ok).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].ts, s[0].value), (12.5, 0.25));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert_eq!(parse_answer(200, scalar).unwrap()[0].value, f64::INFINITY);
        let cases: Vec<(u16, String, &str)> = vec![
            (
                500,
                format!("internal error: {SECRET}"),
                "prometheus answered HTTP 500",
            ),
            (
                200,
                format!("<html>{SECRET}</html>"),
                "body is not Prometheus JSON",
            ),
            (
                400,
                format!(r#"{{"status":"error","errorType":"bad_data","error":"{SECRET}"}}"#),
                "prometheus answered HTTP 400 (bad_data)",
            ),
            (
                422,
                format!(r#"{{"status":"error","errorType":"{SECRET}","error":"x"}}"#),
                "prometheus answered HTTP 422",
            ),
            (
                200,
                format!(r#"{{"status":"success","data":{{"resultType":"{SECRET}","result":[]}}}}"#),
                "unknown result type",
            ),
            (
                200,
                format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":["{SECRET}","1"]}}]}}}}"#
                ),
                "not an instant vector or scalar",
            ),
            (
                200,
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.to_string(),
                "result type matrix",
            ),
            (
                200,
                format!(r#"{{"status":"{SECRET}"}}"#),
                "prometheus answered HTTP 200",
            ),
        ];
        for (status, body, want) in cases {
            let e = parse_answer(status, body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{status} {body}: {e}");
            assert!(!e.contains(SECRET), "{status} {body}: {e}");
        }
    }

    #[test]
    fn redirects_stay_on_the_same_scheme_host_and_port() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let first = [u("http://prom.example:9090/api/v1/query")];
        assert_eq!(
            check_redirect(&u("http://prom.example:9090/x"), &first),
            Ok(())
        );
        assert_eq!(
            check_redirect(&u("http://PROM.example:9090/x"), &first),
            Ok(())
        );
        for other in [
            "http://prom.example:9091/x",
            "http://other.example:9090/x",
            "http://127.0.0.1:9090/x",
        ] {
            assert_eq!(
                check_redirect(&u(other), &first),
                Err(RedirectRefusal::OtherHost),
                "{other}"
            );
        }
        assert_eq!(
            check_redirect(&u("https://prom.example:9090/x"), &first),
            Err(RedirectRefusal::OtherScheme)
        );
        // Default ports are the same port.
        assert_eq!(
            check_redirect(&u("https://p/x"), &[u("https://p:443/a")]),
            Ok(())
        );
        let chain = vec![first[0].clone(); MAX_REDIRECTS + 1];
        assert_eq!(
            check_redirect(&u("http://prom.example:9090/x"), &chain),
            Err(RedirectRefusal::TooMany)
        );
        assert!(check_redirect(&u("http://prom.example:9090/x"), &[]).is_err());
        let e = PromError::RedirectRefused {
            url: "http://prom.example:9090".into(),
            reason: RedirectRefusal::OtherHost,
        };
        assert!(
            e.to_string().contains("redirect to another host refused"),
            "{e}"
        );
        assert_eq!(e.reason(), "RedirectRefused");
    }

    #[test]
    fn credentials_in_the_url_are_not_shown() {
        let c = PromClient::new(
            "http://user:pw@prom.example:9090/",
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(c.shown, "http://prom.example:9090");
        assert_eq!(c.base, "http://user:pw@prom.example:9090");
    }

    #[test]
    fn auth_from_secret() {
        let mut d = BTreeMap::new();
        d.insert("username".to_string(), b"u".to_vec());
        d.insert("password".to_string(), b"p\n".to_vec());
        assert_eq!(
            Auth::from_secret_data(&d).unwrap(),
            Auth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        d.insert("token".to_string(), b"t".to_vec());
        assert_eq!(
            Auth::from_secret_data(&d).unwrap(),
            Auth::Bearer("t".into())
        );
    }

    #[test]
    fn auth_secret_must_opt_in() {
        let mut d = BTreeMap::new();
        d.insert("token".to_string(), b"t".to_vec());
        let mut labels = BTreeMap::new();
        let e = Auth::from_secret("db-creds", None, &d).unwrap_err();
        assert!(
            e.contains("db-creds lacks the label lopper.dev/prometheus-auth=true"),
            "{e}"
        );
        labels.insert(AUTH_OPT_IN_LABEL.to_string(), "false".to_string());
        assert!(Auth::from_secret("db-creds", Some(&labels), &d).is_err());
        labels.insert(AUTH_OPT_IN_LABEL.to_string(), "true".to_string());
        assert_eq!(
            Auth::from_secret("prom", Some(&labels), &d).unwrap(),
            Auth::Bearer("t".into())
        );
        let e = Auth::from_secret("prom", Some(&labels), &BTreeMap::new()).unwrap_err();
        assert!(
            e.starts_with("auth Secret prom: the auth Secret needs"),
            "{e}"
        );
    }
}
