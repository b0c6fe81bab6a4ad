//! The metrics sidecar (`lopper sidecar`) and what it shares with `lopper run`: following a
//! trial's metrics file or TensorBoard event files and reporting the objective.
//!
//! In a pod the sidecar is a native sidecar (an init container with `restartPolicy: Always`,
//! rendered by [`crate::workload::sidecar`]): it starts before the trainer and is stopped
//! (SIGTERM) only after the trainer has ended, so it reads the file once more and posts the
//! last records before the pod, and so the Job, can finish. Each new record goes to the push
//! endpoint with the trial's token; when an answer says prune, the operator has already
//! deleted the trial's Job (which stops the trainer), and the sidecar exits 0. A restarted
//! sidecar reads its [`state`] (kept on an `emptyDir`, which outlives the container) and posts
//! only steps after the last one answered: nothing twice, and nothing after a prune.
//!
//! - [`tail`]: one file followed by polling (appends, rotation, truncation, a late file).
//! - [`source`]: the `file` or `tensorboard` source of a trial as `(step, value)` points.
//! - [`state`], [`post`]: the sidecar's saved progress and its reports.

pub mod post;
pub mod source;
pub mod state;
pub mod tail;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::metrics::spec::MetricsSpec;
pub use source::{Follower, Polled, SourceError};
use state::{State, StateFile, Stopped};

/// How one sidecar runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `file` or `tensorboard`.
    pub spec: MetricsSpec,
    /// The objective's name (the key of the posted metric).
    pub metric: String,
    /// The file (or event-file folder) to follow.
    pub location: PathBuf,
    /// The trial's report URL and token (`LOPPER_REPORT_URL`, `LOPPER_TOKEN`).
    pub report_url: String,
    pub token: String,
    pub state: StateFile,
    /// Time between polls of the file.
    pub interval: Duration,
    /// After the stop signal, how long a record the endpoint does not take yet is retried.
    pub final_deadline: Duration,
}

/// How a sidecar ended (each is exit status 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer said prune.
    Pruned,
    /// The trial had already finished (409), or finished and pruned before a restart.
    Finished,
    /// Stopped by a signal after its last records were posted.
    Stopped,
    /// Started after the trial was pruned or finished: waited for the signal, posted nothing.
    AlreadyStopped,
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("HTTP client: {0}")]
    Http(String),
}

/// Runs until the trial is pruned or finished, or `shutdown` completes (then the file is read
/// a last time and what is new is posted, retried for at most `final_deadline`).
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<Outcome, SidecarError> {
    let mut state = cfg.state.load();
    tokio::pin!(shutdown);
    if let Some(s) = state.stopped {
        tracing::info!(stopped = ?s, "trial already ended before this start; nothing to post");
        shutdown.await;
        return Ok(Outcome::AlreadyStopped);
    }
    let mut follower = Follower::new(&cfg.spec, &cfg.metric, &cfg.location)?;
    follower.resume_after(state.last_step);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| SidecarError::Http(e.to_string()))?;
    tracing::info!(location = %cfg.location.display(), source = cfg.spec.source(), after = ?state.last_step, "following");
    let mut pending: VecDeque<(i64, f64)> = VecDeque::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let stopping = deadline.is_some();
        let polled = if stopping {
            follower.finish()
        } else {
            follower.poll()
        };
        pending.extend(polled.points);
        while let Some(&(step, value)) = pending.front() {
            let answer =
                post::post(&http, &cfg.report_url, &cfg.token, &cfg.metric, step, value).await;
            match answer {
                post::Answer::Recorded { prune } => {
                    tracing::debug!(step, value, prune, "posted");
                    pending.pop_front();
                    state.last_step = Some(step);
                    if prune {
                        tracing::info!(step, "pruned: the operator deleted the trial's Job");
                        state.stopped = Some(Stopped::Pruned);
                    }
                    save(&cfg.state, &state);
                    if prune {
                        return Ok(Outcome::Pruned);
                    }
                }
                post::Answer::Finished { prune } => {
                    tracing::info!(
                        step,
                        prune,
                        "the trial already finished; nothing more to post"
                    );
                    state.stopped = Some(if prune {
                        Stopped::Pruned
                    } else {
                        Stopped::Finished
                    });
                    save(&cfg.state, &state);
                    return Ok(if prune {
                        Outcome::Pruned
                    } else {
                        Outcome::Finished
                    });
                }
                post::Answer::Refused(why) => {
                    tracing::warn!(step, error = %why, "record refused by the endpoint; skipped");
                    pending.pop_front();
                    state.last_step = Some(step);
                    save(&cfg.state, &state);
                }
                post::Answer::Retry { why, after } => {
                    tracing::warn!(step, error = %why, "report not taken; retrying");
                    if let Some(d) = deadline {
                        if Instant::now() + after > d {
                            tracing::error!(
                                unposted = pending.len(),
                                "stopping with records the endpoint did not take"
                            );
                            return Ok(Outcome::Stopped);
                        }
                        tokio::time::sleep(after).await;
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep(after) => {}
                            _ = &mut shutdown => {
                                deadline = Some(Instant::now() + cfg.final_deadline);
                                break;
                            }
                        }
                    }
                }
            }
        }
        if stopping {
            return Ok(Outcome::Stopped);
        }
        if deadline.is_some() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = &mut shutdown => {
                tracing::info!("stop signal: posting the last records");
                deadline = Some(Instant::now() + cfg.final_deadline);
            }
        }
    }
}

fn save(file: &StateFile, state: &State) {
    // Not fatal: without the state a restart may repeat a post, which the endpoint ignores.
    if let Err(e) = file.save(state) {
        tracing::warn!(error = %e, "saving the sidecar state failed");
    }
}
