//! Trials that run as a JobSet or a Kubeflow TrainJob: the same lifecycle as a Job trial
//! ([`super::trial`]'s plan), read from the workload's own status. These kinds are optional
//! in a cluster, so they are not part of the view (a watch on a CRD that is not installed
//! would hold up the whole view): [`super::workload_watch`] caches them where the cluster
//! serves them and wakes the trial on a change; elsewhere a running trial reads its workload
//! by name and polls.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use std::sync::Arc;

use super::observe::{ObserveError, observe};
use super::status::is_status;
use super::trial::{JobState, TrialPlan, fail, plan_state, write};
use super::{Context, Error};
use crate::crd::{Study, Trial, TrialPhase};
use crate::workload::kinds::{WorkloadKind, render};

/// How often a running JobSet or TrainJob trial is looked at while its kind is not watched.
const POLL: Duration = Duration::from_secs(2);
/// A safety net when it is: the watch's events wake the trial.
const POLL_WATCHED: Duration = Duration::from_secs(60);

/// Maps a JobSet's or TrainJob's status to a [`JobState`] (pure).
pub fn workload_state(kind: WorkloadKind, obj: &DynamicObject) -> JobState {
    let (done, jobs) = match kind {
        WorkloadKind::TrainJob => ("Complete", "jobsStatus"),
        _ => ("Completed", "replicatedJobsStatus"),
    };
    let status = obj.data.get("status");
    let conditions = status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    for c in &conditions {
        if c.get("status").and_then(Value::as_str) != Some("True") {
            continue;
        }
        match c.get("type").and_then(Value::as_str) {
            Some(t) if t == done => {
                return JobState::Succeeded {
                    at: text(c, "lastTransitionTime").and_then(|t| t.parse().ok()),
                };
            }
            Some("Failed") => {
                return JobState::Failed {
                    reason: text(c, "reason").unwrap_or_else(|| format!("{kind:?}Failed")),
                    message: text(c, "message").unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    if obj.data.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return JobState::Queued;
    }
    let ready: u64 = status
        .and_then(|s| s.get(jobs))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|j| j.get("ready").and_then(Value::as_u64))
                .sum()
        })
        .unwrap_or(0);
    if ready > 0 {
        JobState::Running
    } else {
        JobState::Pending
    }
}

pub async fn reconcile(ctx: &Context, trial: &Trial, study: &Study) -> Result<Action, Error> {
    let kind = WorkloadKind::of(study);
    let client = &ctx.view.client;
    let ns = trial.namespace().unwrap_or_default();
    let name = trial.name_any();
    let phase = trial.phase();
    let old = trial.status.clone().unwrap_or_default();
    let wl_name = old.job.clone().unwrap_or_else(|| name.clone());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &kind.api_resource());
    if phase.is_finished() {
        // Never restarts; a pruned or failed trial's workload (all its pods) goes away.
        if matches!(phase, TrialPhase::Pruned | TrialPhase::Failed)
            && let Some(o) = api.get_opt(&wl_name).await?
            && o.metadata.deletion_timestamp.is_none()
            && !matches!(
                workload_state(kind, &o),
                JobState::Succeeded { .. } | JobState::Failed { .. }
            )
        {
            match api.delete(&wl_name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(Action::await_change());
    }
    if let Some(msg) = &trial.spec.invalid {
        return fail(ctx, trial, &old, "InvalidSpec", msg).await;
    }
    let generation = trial.meta().generation;
    let mut status = old.clone();
    let watch = ctx.workloads.as_ref().and_then(|w| w.of(kind));
    let poll = match watch {
        Some(w) if w.is_ready() => POLL_WATCHED,
        _ => POLL,
    };
    let found = match watch.and_then(|w| w.get(&ns, &wl_name)) {
        Some(o) => Some(o),
        None => api.get_opt(&wl_name).await?.map(Arc::new),
    };
    let obj = match found {
        Some(o) => o,
        None if old.job.is_some() => {
            let msg = format!(
                "{kind:?} {wl_name} was deleted while the trial was {}",
                phase.as_str()
            );
            return fail(ctx, trial, &old, "JobDeleted", &msg).await;
        }
        None => {
            let extra = match &ctx.env_hook {
                Some(h) => h(ctx.view.clone(), Arc::new(study.clone()), trial.clone())
                    .await
                    .map_err(Error::Other)?,
                None => Default::default(),
            };
            match render(study, trial, &extra) {
                Ok(o) => match api.create(&PostParams::default(), &o).await {
                    Ok(_) => tracing::info!(trial = %name, kind = ?kind, "workload created"),
                    Err(e) if is_status(&e, 409) => {}
                    Err(e) if is_status(&e, 404) => {
                        let ar = kind.api_resource();
                        let msg = format!(
                            "the cluster serves no {} ({}): install its CRD and controller",
                            ar.kind, ar.api_version
                        );
                        return fail(ctx, trial, &old, "WorkloadKindNotServed", &msg).await;
                    }
                    Err(e) if is_status(&e, 422) || is_status(&e, 400) => {
                        return fail(ctx, trial, &old, "InvalidJob", &e.to_string()).await;
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return fail(ctx, trial, &old, "InvalidTemplate", &e.to_string()).await,
            }
            status.job = Some(wl_name);
            status.phase = Some(super::queued::created_phase(study));
            write(ctx, trial, &status, &old).await?;
            return Ok(Action::requeue(poll));
        }
    };
    status.job = Some(wl_name);
    let state = workload_state(kind, &obj);
    let metric = &study.spec.objective.metric;
    let status = match plan_state(&status, state, None, metric, generation, Timestamp::now()) {
        TrialPlan::Write { status, .. } => *status,
        TrialPlan::Fail { reason, message } => {
            return fail(ctx, trial, &old, &reason, &message).await;
        }
        TrialPlan::FailWithPodDetail { reason, message } => {
            return super::trial::fail_with_pod_detail(ctx, trial, &old, &reason, message).await;
        }
        TrialPlan::Preempted { message } => {
            return super::queued::preempted(ctx, trial, &old, study, &message).await;
        }
    };
    write(ctx, trial, &status, &old).await?;
    // A decision pending since the last report (e.g. the operator restarted in between).
    if status.checked_step != status.intermediate.last().map(|p| p.step)
        && !status.phase.is_some_and(TrialPhase::is_finished)
    {
        match observe(&ctx.view, &ns, &name, &[]).await {
            Ok(_) | Err(ObserveError::Finished { .. }) | Err(ObserveError::NotFound(_)) => {}
            Err(e) => return Err(Error::Other(e.to_string())),
        }
    }
    if status.phase.is_some_and(TrialPhase::is_finished) {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(poll))
}
