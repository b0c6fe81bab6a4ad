//! The `logs` metric source: follow the primary container's log through the API
//! (`pods/log?follow=true&timestamps=true`) — nothing is injected into the pod.
//!
//! The stream is read in chunks ([`LineBuffer`]), each line carries the kubelet's RFC3339Nano
//! timestamp, and [`ResumeFilter`] remembers the last one: after a broken stream the follower
//! asks again with `sinceTime` (second precision, so the answer overlaps) and drops the lines it
//! already saw — by timestamp, and by count among lines that share the very last timestamp — so
//! no step is counted twice (which matters for lines without a step key). A partial line at a
//! break is dropped and comes again after the resume. After an operator restart the log is read
//! from its beginning with a fresh parser; `observe` ignores the steps already recorded.

use std::time::Duration;

use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};

use super::parser::{LineBuffer, LineParser, SpecError};
use super::spec::LogsSpec;
use super::telemetry;
use crate::controller::{ObserveError, observe};

/// Deduplicates lines across reconnects by their timestamps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResumeFilter {
    last: Option<Timestamp>,
    /// Lines accepted with exactly `last`.
    at_last: usize,
    /// After a reconnect: lines with exactly `last` still to skip.
    skip_at_last: usize,
}

impl ResumeFilter {
    /// `sinceTime` for the next request: the last timestamp seen, truncated to the second.
    pub fn since_time(&self) -> Option<Timestamp> {
        self.last
            .and_then(|t| Timestamp::from_second(t.as_second()).ok())
    }

    /// Call before reading a new stream that starts at [`Self::since_time`].
    pub fn reconnect(&mut self) {
        self.skip_at_last = self.at_last;
    }

    /// Whether a line stamped `ts` is new.
    pub fn accept(&mut self, ts: Timestamp) -> bool {
        match self.last {
            Some(last) if ts < last => false,
            Some(last) if ts == last => {
                if self.skip_at_last > 0 {
                    self.skip_at_last -= 1;
                    false
                } else {
                    self.at_last += 1;
                    true
                }
            }
            _ => {
                self.last = Some(ts);
                self.at_last = 1;
                self.skip_at_last = 0;
                true
            }
        }
    }
}

/// Splits `2024-05-01T10:00:00.123456789Z text` into timestamp and text.
pub fn split_timestamp(line: &str) -> (Option<Timestamp>, &str) {
    if let Some((ts, rest)) = line.split_once(' ')
        && let Ok(t) = ts.parse::<Timestamp>()
    {
        return (Some(t), rest);
    }
    (None, line)
}

/// The pure part of a follower: bytes of (possibly several, broken) streams in, points out.
#[derive(Debug)]
pub struct FollowState {
    lines: LineBuffer,
    parser: LineParser,
    resume: ResumeFilter,
}

impl FollowState {
    pub fn new(spec: &LogsSpec, objective_metric: &str) -> Result<Self, SpecError> {
        Ok(FollowState {
            lines: LineBuffer::default(),
            parser: LineParser::new(spec, objective_metric)?,
            resume: ResumeFilter::default(),
        })
    }

    /// A chunk of the current stream; returns the new points.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<(i64, f64)> {
        let lines = self.lines.push(chunk);
        lines.iter().filter_map(|l| self.line(l)).collect()
    }

    fn line(&mut self, line: &str) -> Option<(i64, f64)> {
        let (ts, text) = split_timestamp(line);
        if let Some(ts) = ts
            && !self.resume.accept(ts)
        {
            return None;
        }
        self.parser.feed(text)
    }

    /// The stream broke: drops the partial line; returns `sinceTime` for the next request.
    pub fn broken(&mut self) -> Option<Timestamp> {
        let _ = self.lines.finish();
        self.resume.reconnect();
        self.resume.since_time()
    }

    /// The container ended and its log was read to the end: the last line counts even
    /// without a terminator.
    pub fn finished(&mut self) -> Option<(i64, f64)> {
        let l = self.lines.finish()?;
        self.line(&l)
    }
}

/// How a follower ended.
#[derive(Debug, PartialEq, Eq)]
pub enum FollowEnd {
    /// The trial finished or was pruned, or is gone.
    TrialDone,
    /// The container terminated and its log was read.
    ContainerDone,
}

/// Follows the log of `trial`'s pod until the trial or its container ends, feeding points to
/// [`observe`]. Transient errors (pod not started yet, broken stream, API errors) are retried.
pub async fn follow_trial(
    view: std::sync::Arc<crate::controller::View>,
    namespace: String,
    trial: String,
    job: String,
    container: Option<String>,
    spec: LogsSpec,
    objective_metric: String,
) -> Result<FollowEnd, SpecError> {
    let client = view.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut state = FollowState::new(&spec, &objective_metric)?;
    let mut pod_name: Option<String> = None;
    let mut since: Option<Timestamp> = None;
    let mut delay = Duration::from_millis(500);
    loop {
        // The Job's (newest) pod.
        let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
        let pod = match pods.list(&lp).await {
            Ok(list) => list
                .items
                .into_iter()
                .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0)),
            Err(e) => {
                tracing::debug!(%trial, error = %e, "log follower: listing pods failed");
                None
            }
        };
        let Some(pod) = pod else {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
            continue;
        };
        if pod_name.as_deref() != Some(&pod.name_any()) {
            if pod_name.is_some() {
                // A replacement pod: a new log, but the parser keeps its steps.
                let parser = state.parser.clone();
                state = FollowState {
                    lines: LineBuffer::default(),
                    parser,
                    resume: ResumeFilter::default(),
                };
                since = None;
            }
            pod_name = Some(pod.name_any());
        }
        let name = pod.name_any();
        // Without a primary container named, the pod's first container.
        let container_name = container.clone().or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
        });
        let params = LogParams {
            container: container_name.clone(),
            follow: true,
            timestamps: true,
            since_time: since,
            ..Default::default()
        };
        let mut stream = match pods.log_stream(&name, &params).await {
            Ok(s) => s,
            Err(e) => {
                // e.g. 400 "container is waiting to start"
                tracing::debug!(%trial, pod = %name, error = %e, "log follower: not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        delay = Duration::from_millis(500);
        let mut buf = vec![0u8; 16 * 1024];
        let mut clean_end = false;
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => {
                    clean_end = true;
                    break;
                }
                Ok(n) => {
                    let points = state.feed(&buf[..n]);
                    if !points.is_empty()
                        && let Some(end) = record(&view, &namespace, &trial, &points).await
                    {
                        return Ok(end);
                    }
                }
                Err(e) => {
                    telemetry::error("logs", "stream");
                    tracing::debug!(%trial, error = %e, "log follower: stream broke");
                    break;
                }
            }
        }
        // Ended: was it the container finishing, or a broken stream?
        let terminated = match pods.get(&name).await {
            Ok(p) => container_terminated(&p, container_name.as_deref()),
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 404) => true,
            Err(_) => false,
        };
        if clean_end && terminated {
            if let Some(p) = state.finished()
                && let Some(end) = record(&view, &namespace, &trial, &[p]).await
            {
                return Ok(end);
            }
            return Ok(FollowEnd::ContainerDone);
        }
        since = state.broken();
        tokio::time::sleep(delay).await;
    }
}

/// Records points; `Some(end)` when following should stop.
async fn record(
    view: &crate::controller::View,
    namespace: &str,
    trial: &str,
    points: &[(i64, f64)],
) -> Option<FollowEnd> {
    telemetry::observed("logs", points.len());
    match observe(view, namespace, trial, points).await {
        Ok(o) if o.prune => Some(FollowEnd::TrialDone),
        Ok(_) => None,
        Err(ObserveError::NotFound(_)) | Err(ObserveError::Finished { .. }) => {
            Some(FollowEnd::TrialDone)
        }
        Err(e) => {
            telemetry::error("logs", "observe");
            tracing::warn!(%trial, error = %e, "log follower: recording failed");
            None
        }
    }
}

fn container_terminated(pod: &Pod, container: Option<&str>) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded") | Some("Failed")) {
        return true;
    }
    status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| container.is_none_or(|n| c.name == n))
        .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_filter_skips_seen_lines() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let mut f = ResumeFilter::default();
        assert!(f.accept(t("2024-01-01T00:00:01.5Z")));
        assert!(f.accept(t("2024-01-01T00:00:02.25Z")));
        assert!(f.accept(t("2024-01-01T00:00:02.25Z")));
        f.reconnect();
        assert_eq!(f.since_time(), Some(t("2024-01-01T00:00:02Z")));
        assert!(!f.accept(t("2024-01-01T00:00:02.1Z")));
        assert!(!f.accept(t("2024-01-01T00:00:02.25Z")));
        assert!(!f.accept(t("2024-01-01T00:00:02.25Z")));
        assert!(f.accept(t("2024-01-01T00:00:02.25Z")));
        assert!(f.accept(t("2024-01-01T00:00:03Z")));
    }
}
