//! The push endpoint: `POST /v1/namespaces/{namespace}/trials/{trial}/report`.
//!
//! Body `{"step": 3, "metrics": {"val_loss": 0.41}}` with `Authorization: Bearer <token>` →
//! `200 {"prune": false}` (or `true`: the trainer should stop). Errors, as `{"error": "..."}`:
//! 400 malformed body or missing objective metric, 401 missing or wrong token (an unknown trial
//! or an unwatched namespace gets the very same answer, so the port reveals nothing before a
//! token is checked), 409 trial already finished (the body also says `"prune"`), 413 body
//! over 64 KiB, 429 over the per-trial rate ([`RateLimiter`], with `Retry-After`), 503 too many
//! reports in flight ([`MAX_IN_FLIGHT`]) or the API unreachable.
//!
//! The route is generic over a [`ReportSink`]: the operator's sink checks the Trial's token
//! Secret and records through `controller::observe`; `lopper run` plugs in its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::telemetry;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reports handled at once; past it a report waits up to [`QUEUE_WAIT`], then gets 503.
pub const MAX_IN_FLIGHT: usize = 512;

/// How long a report waits for a free slot before 503.
pub const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The route of the endpoint (axum path syntax).
pub const REPORT_ROUTE: &str = "/v1/namespaces/{namespace}/trials/{trial}/report";

/// The URL path a trainer posts to.
pub fn report_path(namespace: &str, trial: &str) -> String {
    format!("/v1/namespaces/{namespace}/trials/{trial}/report")
}

/// Why a report was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ReportError {
    /// 400: malformed body or missing objective metric (the message names what is wrong).
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong token.
    #[error("missing or wrong token")]
    Unauthorized,
    /// 404: unknown trial.
    #[error("trial {0} not found")]
    NotFound(String),
    /// 409: the trial already finished; `prune` tells the trainer whether it was pruned.
    #[error("trial {trial} already finished ({phase})")]
    Finished {
        trial: String,
        phase: String,
        prune: bool,
    },
    /// 429: the trial reports faster than [`RateLimiter`] allows; retry after a second.
    #[error("too many reports for this trial; slow down")]
    TooManyRequests,
    /// 503: the sink cannot record right now (API server unreachable, ...); retry later.
    #[error("{0}")]
    Unavailable(String),
}

/// A token bucket per trial: [`RateLimiter::RATE`] reports a second on average, bursts of
/// [`RateLimiter::BURST`]. Keyed by trial UID and used after the token check, so only real
/// trials take room.
#[derive(Default)]
pub struct RateLimiter(std::sync::Mutex<std::collections::HashMap<String, (f64, Instant)>>);

impl RateLimiter {
    pub const RATE: f64 = 50.0;
    pub const BURST: f64 = 200.0;

    /// Takes one report from `key`'s bucket at `now`; false when it is empty.
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() > 100_000 {
            // Full buckets carry nothing: drop those idle long enough to have refilled.
            m.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() * Self::RATE < Self::BURST);
        }
        let (tokens, at) = m.entry(key.to_string()).or_insert((Self::BURST, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * Self::RATE;
        *tokens = (*tokens + refill).min(Self::BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl ReportError {
    pub fn status(&self) -> StatusCode {
        match self {
            ReportError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ReportError::Unauthorized => StatusCode::UNAUTHORIZED,
            ReportError::NotFound(_) => StatusCode::NOT_FOUND,
            ReportError::Finished { .. } => StatusCode::CONFLICT,
            ReportError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ReportError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Where reports go. The operator and `lopper run` implement it differently.
pub trait ReportSink: Send + Sync + 'static {
    /// Records `metrics` at `step` for `namespace/trial` after checking `bearer_token`
    /// (use [`tokens_match`]) and that `metrics` holds the objective (use [`objective_value`]).
    /// Returns whether the trial is pruned (the trainer should stop).
    fn report<'a>(
        &'a self,
        namespace: &'a str,
        trial: &'a str,
        bearer_token: &'a str,
        step: i64,
        metrics: &'a BTreeMap<String, f64>,
    ) -> BoxFuture<'a, Result<bool, ReportError>>;
}

/// Constant-time comparison of a presented token with the expected one.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The name under which a report may carry the objective when it does not name it (what
/// `python/lopper_report.py` sends when it does not know the objective's name).
pub const OBJECTIVE_ALIAS: &str = "value";

/// The objective's value in a report (under its name, else under [`OBJECTIVE_ALIAS`]):
/// `Err(400)` when absent, else the value (NaN and ±inf kept: Optuna records both, and a
/// diverged loss reported as inf is what a threshold or median pruner should stop).
pub fn objective_value(
    metrics: &BTreeMap<String, f64>,
    objective: &str,
) -> Result<f64, ReportError> {
    match metrics
        .get(objective)
        .or_else(|| metrics.get(OBJECTIVE_ALIAS))
    {
        None => Err(ReportError::BadRequest(format!(
            "metrics.{objective} (the study's objective metric, or `value`) is missing"
        ))),
        Some(v) => Ok(*v),
    }
}

/// A report body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportBody {
    pub step: i64,
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct RawBody {
    step: Option<serde_json::Value>,
    metrics: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses and checks a body; the error message names what is wrong.
pub fn parse_body(bytes: &[u8]) -> Result<ReportBody, String> {
    let raw: RawBody =
        serde_json::from_slice(bytes).map_err(|e| format!("body is not a JSON object: {e}"))?;
    let step = match raw.step {
        None => return Err("step is missing".into()),
        Some(serde_json::Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if i >= 0 => i,
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => f as i64,
            _ => return Err(format!("step must be a non-negative integer (got {n})")),
        },
        Some(v) => return Err(format!("step must be a non-negative integer (got {v})")),
    };
    let Some(raw_metrics) = raw.metrics else {
        return Err("metrics is missing (an object of metric names to numbers)".into());
    };
    let mut metrics = BTreeMap::new();
    for (k, v) in raw_metrics {
        let f = match &v {
            serde_json::Value::Number(n) => n.as_f64(),
            // JSON has no NaN/Infinity: the Python module sends them as strings.
            serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "nan" => Some(f64::NAN),
                "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
                "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
                _ => s.trim().parse::<f64>().ok(),
            },
            _ => None,
        };
        match f {
            Some(f) => {
                metrics.insert(k, f);
            }
            None => return Err(format!("metrics.{k} must be a number (got {v})")),
        }
    }
    Ok(ReportBody { step, metrics })
}

/// The bearer token of a request, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[derive(Serialize)]
struct PruneAnswer {
    prune: bool,
}

fn error_response(status: StatusCode, message: String, prune: Option<bool>) -> Response {
    let mut body = serde_json::json!({ "error": message });
    if let Some(p) = prune {
        body["prune"] = serde_json::Value::Bool(p);
    }
    (status, axum::Json(body)).into_response()
}

#[derive(Clone)]
struct Shared {
    sink: Arc<dyn ReportSink>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// The router serving [`REPORT_ROUTE`] into `sink`, with the 64 KiB body limit and at most
/// [`MAX_IN_FLIGHT`] reports at once.
pub fn router(sink: Arc<dyn ReportSink>) -> Router {
    Router::new()
        .route(REPORT_ROUTE, post(handle))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Shared {
            sink,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        })
}

async fn handle(
    State(shared): State<Shared>,
    Path((namespace, trial)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = Instant::now();
    let permit = tokio::time::timeout(QUEUE_WAIT, shared.in_flight.acquire()).await;
    let response = match permit {
        Ok(Ok(_permit)) => answer(&*shared.sink, &namespace, &trial, &headers, body).await,
        _ => {
            let mut r = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many reports in flight; retry".into(),
                None,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
    };
    let code = response.status();
    telemetry::telemetry()
        .report_duration
        .with_label_values(&[code.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if !code.is_success() {
        telemetry::error("push", code.as_str());
    }
    response
}

async fn answer(
    sink: &dyn ReportSink,
    namespace: &str,
    trial: &str,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("body larger than {MAX_BODY_BYTES} bytes")
            } else {
                e.body_text()
            };
            return error_response(status, msg, None);
        }
    };
    let Some(token) = bearer_token(headers) else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer <token>)".into(),
            None,
        );
    };
    let report = match parse_body(&body) {
        Ok(r) => r,
        Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg, None),
    };
    match sink
        .report(namespace, trial, token, report.step, &report.metrics)
        .await
    {
        Ok(prune) => {
            telemetry::observed("push", 1);
            (StatusCode::OK, axum::Json(PruneAnswer { prune })).into_response()
        }
        Err(e) => {
            let prune = match &e {
                ReportError::Finished { prune, .. } => Some(*prune),
                _ => None,
            };
            if matches!(e, ReportError::Unauthorized) {
                tracing::info!(
                    namespace,
                    trial,
                    "push report refused: unknown trial or wrong token"
                );
            }
            let mut r = error_response(e.status(), e.to_string(), prune);
            if matches!(e, ReportError::TooManyRequests) {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[derive(Default)]
    struct Mem {
        got: Mutex<Vec<(String, String, i64, f64)>>,
    }

    impl ReportSink for Mem {
        fn report<'a>(
            &'a self,
            namespace: &'a str,
            trial: &'a str,
            bearer_token: &'a str,
            step: i64,
            metrics: &'a BTreeMap<String, f64>,
        ) -> BoxFuture<'a, Result<bool, ReportError>> {
            Box::pin(async move {
                match trial {
                    "t1" | "t2" => {}
                    "done" => {
                        return Err(ReportError::Finished {
                            trial: trial.into(),
                            phase: "Pruned".into(),
                            prune: true,
                        });
                    }
                    _ => return Err(ReportError::NotFound(trial.into())),
                }
                if !tokens_match(bearer_token, &format!("tok-{trial}")) {
                    return Err(ReportError::Unauthorized);
                }
                let v = objective_value(metrics, "val_loss")?;
                self.got
                    .lock()
                    .unwrap()
                    .push((namespace.into(), trial.into(), step, v));
                Ok(v > 1.0)
            })
        }
    }

    async fn call(
        app: &Router,
        trial: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (u16, serde_json::Value) {
        let mut req =
            Request::post(report_path("ns", trial)).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn statuses() {
        let sink = Arc::new(Mem::default());
        let app = router(sink.clone());
        let ok = r#"{"step": 1, "metrics": {"val_loss": 0.4, "acc": 0.9}}"#;
        let (s, b) = call(&app, "t1", Some("tok-t1"), ok).await;
        assert_eq!((s, b), (200, serde_json::json!({"prune": false})));
        let (s, b) = call(
            &app,
            "t1",
            Some("tok-t1"),
            r#"{"step": 2, "metrics": {"val_loss": 2}}"#,
        )
        .await;
        assert_eq!((s, b), (200, serde_json::json!({"prune": true})));
        // another trial's token, a wrong token, no token
        assert_eq!(call(&app, "t1", Some("tok-t2"), ok).await.0, 401);
        assert_eq!(call(&app, "t1", Some("tok-t1x"), ok).await.0, 401);
        assert_eq!(call(&app, "t1", None, ok).await.0, 401);
        assert_eq!(call(&app, "nope", Some("x"), ok).await.0, 404);
        let (s, b) = call(&app, "done", Some("x"), ok).await;
        assert_eq!(s, 409);
        assert_eq!(b["prune"], true);
        let (s, b) = call(
            &app,
            "t1",
            Some("tok-t1"),
            r#"{"step": 3, "metrics": {"acc": 1}}"#,
        )
        .await;
        assert_eq!(s, 400);
        assert!(b["error"].as_str().unwrap().contains("val_loss"), "{b}");
        let (s, b) = call(&app, "t1", Some("tok-t1"), r#"{"metrics": {}}"#).await;
        assert_eq!(s, 400);
        assert!(b["error"].as_str().unwrap().contains("step"), "{b}");
        let (s, _) = call(
            &app,
            "t1",
            Some("tok-t1"),
            r#"{"step": -1, "metrics": {"val_loss": 1}}"#,
        )
        .await;
        assert_eq!(s, 400);
        let (s, b) = call(&app, "t1", Some("tok-t1"), "not json").await;
        assert_eq!(s, 400);
        assert!(b["error"].as_str().unwrap().contains("JSON"), "{b}");
        let (s, b) = call(
            &app,
            "t1",
            Some("tok-t1"),
            r#"{"step": 3, "metrics": {"val_loss": "oops"}}"#,
        )
        .await;
        assert_eq!(s, 400);
        assert!(
            b["error"].as_str().unwrap().contains("metrics.val_loss"),
            "{b}"
        );
        let big = format!(
            r#"{{"step": 4, "metrics": {{"val_loss": 0.1}}, "pad": "{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        assert_eq!(call(&app, "t1", Some("tok-t1"), big).await.0, 413);
        // NaN and infinity as strings are kept
        let (s, _) = call(
            &app,
            "t2",
            Some("tok-t2"),
            r#"{"step": 5, "metrics": {"val_loss": "NaN"}}"#,
        )
        .await;
        assert_eq!(s, 200);
        let (s, _) = call(
            &app,
            "t2",
            Some("tok-t2"),
            r#"{"step": 6, "metrics": {"val_loss": "Infinity"}}"#,
        )
        .await;
        assert_eq!(s, 200);
        let got = sink.got.lock().unwrap().clone();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], ("ns".into(), "t1".into(), 1, 0.4));
        assert!(got[2].3.is_nan());
        assert_eq!(got[3].3, f64::INFINITY);
    }

    #[test]
    fn token_compare() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", ""));
    }
}
