//! Posting one record to the push endpoint (`crate::metrics::push`) with the trial's token,
//! and what each answer means for the sidecar.

use std::time::Duration;

use serde_json::json;

/// The endpoint's answer to one report, as the sidecar acts on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200: recorded (or ignored as a repeated step); `true` when the trial is pruned.
    Recorded { prune: bool },
    /// 409: the trial already finished (`prune` when it was pruned): post nothing more.
    Finished { prune: bool },
    /// 400: this record can never be recorded (the message says why): skip it.
    Refused(String),
    /// 401, 429, 503, no answer, ...: try the same record again after `after`.
    Retry { why: String, after: Duration },
}

/// Posts `{"step": step, "metrics": {metric: value}}` to `url`.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    metric: &str,
    step: i64,
    value: f64,
) -> Answer {
    // JSON has no NaN or infinity: the endpoint takes them as strings.
    let v = if value.is_finite() {
        json!(value)
    } else if value.is_nan() {
        json!("NaN")
    } else if value > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    };
    let body = json!({"step": step, "metrics": {metric: v}});
    let resp = match http.post(url).bearer_auth(token).json(&body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Answer::Retry {
                why: format!("POST {url}: {e}"),
                after: Duration::from_secs(1),
            };
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    let prune = body["prune"].as_bool().unwrap_or(false);
    let message = body["error"].as_str().unwrap_or_default().to_string();
    match status {
        200 => Answer::Recorded { prune },
        409 => Answer::Finished { prune },
        400 | 413 => Answer::Refused(message),
        401 => Answer::Retry {
            // The token comes from the trial's Secret; a wrong one does not heal by itself, but
            // retrying slowly costs nothing and shows in the log.
            why: format!("401 {message}: check LOPPER_TOKEN"),
            after: Duration::from_secs(5),
        },
        _ => Answer::Retry {
            why: format!("{status} {message}"),
            after: retry_after.unwrap_or(Duration::from_secs(1)),
        },
    }
}
