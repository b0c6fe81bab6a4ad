//! The single entry point for observed metrics: every metric source (logs, Prometheus, push)
//! and the tests call [`observe`].
//!
//! It appends new `(step, value)` points to `Trial.status.intermediate` (a repeated or lower
//! step is ignored, as Optuna ignores a second report of a step; NaN is kept as `null`, ±inf
//! dropped; at most [`MAX_POINTS`](crate::crd::MAX_POINTS) points are kept: the first 999 and
//! the newest), then asks the study's pruner right away, seeing every trial of the study, and
//! acts on a "prune": the Trial becomes `Pruned` with a condition, its Job is deleted with
//! background propagation and an Event is published.
//!
//! Trial status is the only state: the read-modify-write is a server-side apply carrying the
//! `resourceVersion` it read, retried on conflict, so concurrent observers never lose a point.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::{Client, ResourceExt};

use super::prune::{
    decide, delete_job, rungs_to_status, save_pruner_state, study_records, trial_event,
};
use super::status::{apply_trial_status, is_status, set_condition};
use crate::crd::{MAX_POINTS, Study, Trial, TrialPhase, TrialStatus, trial::append_points};

/// What [`observe`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObserveOutcome {
    /// How many of the given points were stored.
    pub recorded: usize,
    /// Whether the trial is (now) pruned: the trainer should stop.
    pub prune: bool,
}

/// Why [`observe`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("trial {0} not found")]
    NotFound(String),
    /// The trial already finished (Completed, Pruned or Failed); `prune` is true if Pruned.
    #[error("trial {trial} already finished ({phase})")]
    Finished {
        trial: String,
        phase: &'static str,
        prune: bool,
    },
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("pruner of study {study}: {message}")]
    Pruner { study: String, message: String },
    #[error("trial {0}: too many concurrent writes, giving up")]
    Conflict(String),
}

/// Appends points to a trial and runs the pruning decision (see the module docs).
/// An empty `points` just re-runs a pending decision (used by the Trial reconciler).
pub async fn observe(
    client: &Client,
    namespace: &str,
    trial: &str,
    points: &[(i64, f64)],
) -> Result<ObserveOutcome, ObserveError> {
    let api: Api<Trial> = Api::namespaced(client.clone(), namespace);
    for _attempt in 0..16 {
        let t = match api.get(trial).await {
            Ok(t) => t,
            Err(e) if is_status(&e, 404) => return Err(ObserveError::NotFound(trial.into())),
            Err(e) => return Err(e.into()),
        };
        let phase = t.phase();
        if phase.is_finished() {
            return Err(ObserveError::Finished {
                trial: trial.into(),
                phase: phase.as_str(),
                prune: phase == TrialPhase::Pruned,
            });
        }
        let mut status = t.status.clone().unwrap_or_default();
        let mut dropped = status.dropped_points.unwrap_or(0);
        let recorded = append_points(&mut status.intermediate, &mut dropped, points, MAX_POINTS);
        if dropped > 0 {
            status.dropped_points = Some(dropped);
        }
        let last = status.intermediate.last().map(|p| p.step);
        status.last_step = last;
        if recorded == 0 && status.checked_step == last {
            return Ok(ObserveOutcome {
                recorded: 0,
                prune: false,
            });
        }
        let (pruned, message) = match decide_for(client, namespace, &t, &status).await? {
            Some((d, rungs)) => {
                status.rungs.extend(rungs);
                (d.prune, Some(d))
            }
            None => (false, None),
        };
        status.checked_step = last;
        if pruned && let Some(d) = &message {
            mark_pruned(&mut status, d, t.metadata.generation);
        }
        let rv = t.resource_version();
        match apply_trial_status(&api, trial, &status, rv.as_deref()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 409) => continue,
            Err(e) if is_status(&e, 404) => return Err(ObserveError::NotFound(trial.into())),
            Err(e) => return Err(e.into()),
        }
        if pruned && let Some(d) = message {
            act_on_prune(client, namespace, &t, &d.reason, &d.message).await?;
        }
        return Ok(ObserveOutcome {
            recorded,
            prune: pruned,
        });
    }
    Err(ObserveError::Conflict(trial.into()))
}

/// Runs the pruner for a trial whose status would become `status`; returns the decision and
/// the rung values to record. `None` when the study is gone (nothing to decide against).
async fn decide_for(
    client: &Client,
    ns: &str,
    t: &Trial,
    status: &TrialStatus,
) -> Result<
    Option<(
        crate::engine::pruners::Decision,
        std::collections::BTreeMap<String, f64>,
    )>,
    ObserveError,
> {
    let studies: Api<Study> = Api::namespaced(client.clone(), ns);
    let study = match studies.get(&t.spec.study).await {
        Ok(s) => s,
        Err(e) if is_status(&e, 404) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let others: Vec<_> = study_records(client, ns, &t.spec.study)
        .await?
        .iter()
        .map(Trial::record)
        .collect();
    let mut me = t.clone();
    me.status = Some(status.clone());
    let record = me.record();
    let before = study
        .status
        .as_ref()
        .and_then(|s| s.pruner_state.clone())
        .unwrap_or_default();
    let mut state = before.clone();
    let d =
        decide(&study, &others, &record, &mut state).map_err(|message| ObserveError::Pruner {
            study: study.name_any(),
            message,
        })?;
    if state != before {
        save_pruner_state(client, &study, &state).await?;
    }
    let rungs = rungs_to_status(&d.record_rungs);
    Ok(Some((d, rungs)))
}

/// Sets the Pruned phase, value, step and condition on a status.
pub fn mark_pruned(
    status: &mut TrialStatus,
    d: &crate::engine::pruners::Decision,
    generation: Option<i64>,
) {
    status.phase = Some(TrialPhase::Pruned);
    status.pruned_at_step = status.intermediate.last().map(|p| p.step);
    status.value = status
        .intermediate
        .last()
        .map(|p| p.value.unwrap_or(f64::NAN))
        .filter(|v| !v.is_nan());
    status.completion_time = Some(Time(Timestamp::now()));
    let reason = if d.reason.is_empty() {
        "Pruned"
    } else {
        &d.reason
    };
    set_condition(
        &mut status.conditions,
        "Pruned",
        true,
        reason,
        &d.message,
        generation,
    );
}

/// Deletes the pruned trial's Job (background propagation) and publishes the Event.
pub async fn act_on_prune(
    client: &Client,
    ns: &str,
    t: &Trial,
    reason: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let job = t
        .status
        .as_ref()
        .and_then(|s| s.job.clone())
        .unwrap_or_else(|| t.name_any());
    delete_job(client, ns, &job).await?;
    tracing::info!(trial = %t.name_any(), %reason, %message, "trial pruned, job deleted");
    trial_event(client, t, false, "Pruned", format!("{reason}: {message}")).await;
    Ok(())
}
