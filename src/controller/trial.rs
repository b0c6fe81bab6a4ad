//! Trial reconcile: create the Job idempotently, map Job/pod state to the Trial's phase,
//! re-run a pending pruning decision, and make sure finished trials never run again.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::job::render_job;
use super::observe::{ObserveError, observe};
use super::prune::{delete_job, trial_event};
use super::status::{apply_trial_status, is_status, set_condition};
use super::telemetry::telemetry;
use super::{Context, Error};
use crate::crd::{Study, TRIAL_LABEL, Trial, TrialPhase, TrialStatus};
use crate::workload::kinds::WorkloadKind;

/// How long a succeeded Job may wait for its final metrics before the Trial fails with
/// `MetricsMissing` (a log follower may still be reading the last lines).
pub const METRICS_GRACE: Duration = Duration::from_secs(30);

pub async fn reconcile(trial: Arc<Trial>, ctx: Arc<Context>) -> Result<Action, Error> {
    let t = telemetry();
    t.reconciles.with_label_values(&["trial"]).inc();
    let timer = t
        .reconcile_duration
        .with_label_values(&["trial"])
        .start_timer();
    let r = reconcile_inner(&trial, &ctx).await;
    timer.observe_duration();
    if r.is_err() {
        t.reconcile_errors.with_label_values(&["trial"]).inc();
    } else {
        ctx.succeeded(&super::object_key(trial.as_ref()));
    }
    r
}

/// What the Job says about the trial.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Suspended: waiting for admission by Kueue (or evicted by it).
    Queued,
    Pending,
    Running,
    Succeeded {
        at: Option<Timestamp>,
    },
    Failed {
        reason: String,
        message: String,
    },
}

/// Maps a Job's status to a [`JobState`] (pure).
pub fn job_state(job: &Job) -> JobState {
    let suspended = job.spec.as_ref().and_then(|s| s.suspend) == Some(true);
    let Some(s) = &job.status else {
        return if suspended {
            JobState::Queued
        } else {
            JobState::Pending
        };
    };
    for c in s.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => {
                return JobState::Succeeded {
                    at: s
                        .completion_time
                        .as_ref()
                        .map(|t| t.0)
                        .or(c.last_transition_time.as_ref().map(|t| t.0)),
                };
            }
            "Failed" | "FailureTarget" => {
                return JobState::Failed {
                    reason: c.reason.clone().unwrap_or_else(|| "JobFailed".into()),
                    message: c.message.clone().unwrap_or_default(),
                };
            }
            _ => {}
        }
    }
    if suspended {
        return JobState::Queued;
    }
    if s.ready.unwrap_or(0) > 0 {
        JobState::Running
    } else {
        JobState::Pending
    }
}

/// A failed pod's container termination, as text ("container trainer exited with code 1 (Error)").
fn pod_failure(pods: &[Pod]) -> Option<String> {
    for p in pods {
        let st = p.status.as_ref()?;
        for cs in st.container_statuses.iter().flatten() {
            if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref())
                && t.exit_code != 0
            {
                return Some(format!(
                    "container {} exited with code {}{}{}",
                    cs.name,
                    t.exit_code,
                    t.reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default(),
                    t.message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
        }
        if st.phase.as_deref() == Some("Failed") {
            return Some(format!(
                "pod {} failed{}",
                p.name_any(),
                st.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
    }
    None
}

fn now() -> Time {
    Time(Timestamp::now())
}

async fn reconcile_inner(trial: &Trial, ctx: &Context) -> Result<Action, Error> {
    if trial.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let client = &ctx.view.client;
    let ns = trial.namespace().unwrap_or_default();
    let name = trial.name_any();
    // The newest known state (our own last write may not be in the store yet).
    let newest = ctx.view.trial(&ns, &name);
    let trial: &Trial = newest.as_deref().unwrap_or(trial);
    let phase = trial.phase();
    let old = trial.status.clone().unwrap_or_default();
    if let Some(study) = ctx.view.study(&ns, &trial.spec.study)
        && WorkloadKind::of(&study) != WorkloadKind::Job
    {
        return super::workloads::reconcile(ctx, trial, &study).await;
    }
    let job_name = old.job.clone().unwrap_or_else(|| name.clone());
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job = match ctx.view.job(&ns, &job_name) {
        Some(j) => Some((*j).clone()),
        // The store may lag a Job we just made: ask before concluding it is gone (a finished
        // trial's missing Job needs no answer).
        None if old.job.is_some() && !phase.is_finished() => jobs.get_opt(&job_name).await?,
        None => None,
    };

    if phase.is_finished() {
        // Never restarts; a pruned or failed trial's Job (and GPUs) go away.
        if matches!(phase, TrialPhase::Pruned | TrialPhase::Failed)
            && let Some(j) = &job
            && j.meta().deletion_timestamp.is_none()
            && !ctx.view.job_recently_deleted(&ns, &job_name)
            && !matches!(
                job_state(j),
                JobState::Succeeded { .. } | JobState::Failed { .. }
            )
        {
            delete_job(client, &ns, &job_name).await?;
            ctx.view.deleted_job(&ns, &job_name);
        }
        return Ok(Action::await_change());
    }
    if let Some(msg) = &trial.spec.invalid {
        // Unreadable params (made by hand: the operator writes only strings, numbers and
        // booleans): nothing to run. A Job made before the edit goes once the trial is Failed.
        return fail(ctx, trial, &old, "InvalidSpec", msg).await;
    }

    let Some(study) = ctx.view.study(&ns, &trial.spec.study) else {
        return Ok(Action::await_change());
    };
    let study: &Study = &study;
    let generation = trial.meta().generation;
    let mut status: TrialStatus = old.clone();
    let job = match job {
        Some(j) => j,
        None if old.job.is_some() => {
            status.phase = Some(TrialPhase::Failed);
            status.completion_time = Some(now());
            let msg = format!(
                "job {job_name} was deleted while the trial was {}",
                phase.as_str()
            );
            set_condition(
                &mut status.conditions,
                "Failed",
                true,
                "JobDeleted",
                &msg,
                generation,
            );
            write(ctx, trial, &status, &old).await?;
            trial_event(client, trial, true, "JobDeleted", msg).await;
            return Ok(Action::await_change());
        }
        None => {
            let extra = match &ctx.env_hook {
                Some(h) => h(ctx.view.clone(), Arc::new(study.clone()), trial.clone())
                    .await
                    .map_err(Error::Other)?,
                None => Default::default(),
            };
            match render_job(study, trial, &extra) {
                Ok(j) => match jobs.create(&PostParams::default(), &j).await {
                    Ok(_) => tracing::info!(trial = %name, "job created"),
                    Err(e) if is_status(&e, 409) => {}
                    Err(e) if is_status(&e, 422) || is_status(&e, 400) => {
                        return fail(ctx, trial, &old, "InvalidJob", &e.to_string()).await;
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return fail(ctx, trial, &old, "InvalidTemplate", &e.to_string()).await,
            }
            status.job = Some(job_name.clone());
            status.phase = Some(super::queued::created_phase(study));
            write(ctx, trial, &status, &old).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    status.job = Some(job_name.clone());
    let (status, action) = match plan(
        &status,
        &job,
        &study.spec.objective.metric,
        generation,
        Timestamp::now(),
    ) {
        TrialPlan::Write { status, requeue } => (*status, Action::requeue(requeue)),
        TrialPlan::Fail { reason, message } => {
            return fail(ctx, trial, &old, &reason, &message).await;
        }
        TrialPlan::Preempted { message } => {
            return super::queued::preempted(ctx, trial, &old, study, &message).await;
        }
        TrialPlan::FailWithPodDetail { reason, message } => {
            return fail_with_pod_detail(ctx, trial, &old, &reason, message).await;
        }
    };

    // A decision pending since the last report (e.g. the operator restarted in between).
    if status.checked_step != status.intermediate.last().map(|p| p.step)
        && !status.phase.is_some_and(TrialPhase::is_finished)
    {
        write(ctx, trial, &status, &old).await?;
        match observe(&ctx.view, &ns, &name, &[]).await {
            Ok(_) | Err(ObserveError::Finished { .. }) | Err(ObserveError::NotFound(_)) => {}
            Err(e) => return Err(Error::Other(e.to_string())),
        }
        return Ok(action);
    }
    write(ctx, trial, &status, &old).await?;
    Ok(action)
}

/// What the reconcile does with a trial whose Job exists (pure).
#[derive(Clone, Debug, PartialEq)]
pub enum TrialPlan {
    /// Write this status (if it changed) and look again after `requeue`.
    Write {
        status: Box<TrialStatus>,
        requeue: Duration,
    },
    /// Fail the trial.
    Fail { reason: String, message: String },
    /// Fail the trial, with its pods' termination detail added to `message`.
    FailWithPodDetail { reason: String, message: String },
    /// The workload was suspended again after it ran: Kueue evicted it.
    Preempted { message: String },
}

/// Maps the Job's state onto the trial's status at time `now` (see [`TrialPlan`]).
pub fn plan(
    old: &TrialStatus,
    job: &Job,
    metric: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> TrialPlan {
    let started = job.status.as_ref().and_then(|s| s.start_time.clone());
    plan_state(old, job_state(job), started, metric, generation, now)
}

/// [`plan`] for any workload kind: its state and, for a succeeded one never seen running,
/// when it started.
pub fn plan_state(
    old: &TrialStatus,
    state: JobState,
    started: Option<Time>,
    metric: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> TrialPlan {
    let mut status = old.clone();
    let mut requeue = Duration::from_secs(300);
    match state {
        // Suspended after its pods ran: evicted (a trial admitted but not yet running that is
        // evicted has used nothing and simply waits again).
        JobState::Queued if old.start_time.is_some() => {
            return TrialPlan::Preempted {
                message: "the workload was evicted (suspended again) after it ran".into(),
            };
        }
        JobState::Queued => status.phase = Some(TrialPhase::Queued),
        // A trial that reported is running even if the Job's `ready` count lags (the report
        // wrote Running), and a pod retried by the Job does not make it Pending again.
        JobState::Pending if status.phase == Some(TrialPhase::Running) => {}
        JobState::Pending => status.phase = Some(TrialPhase::Pending),
        JobState::Running => {
            status.phase = Some(TrialPhase::Running);
            if status.start_time.is_none() {
                status.start_time = Some(Time(now));
            }
        }
        JobState::Succeeded { at } => {
            if status.start_time.is_none() {
                status.start_time = started.or(Some(Time(now)));
            }
            match status.intermediate.last() {
                // Optuna fails a trial told a NaN objective; so do we, so that pruners
                // never count it among the completed trials.
                Some(last) if last.value.is_none() => {
                    return TrialPlan::Fail {
                        reason: "NaNObjective".into(),
                        message: format!(
                            "the job succeeded but its last {metric} (step {}) is NaN",
                            last.step
                        ),
                    };
                }
                Some(last) => {
                    let (step, value) = (last.step, last.value);
                    status.phase = Some(TrialPhase::Completed);
                    status.value = value;
                    status.completion_time = Some(Time(at.unwrap_or(now)));
                    let msg = format!(
                        "completed at step {step} with {metric} = {}",
                        value.map(|v| v.to_string()).unwrap_or_default()
                    );
                    set_condition(
                        &mut status.conditions,
                        "Completed",
                        true,
                        "JobSucceeded",
                        &msg,
                        generation,
                    );
                }
                None => {
                    let waited = now.duration_since(at.unwrap_or(now));
                    if waited.as_secs() >= METRICS_GRACE.as_secs() as i64 {
                        return TrialPlan::Fail {
                            reason: "MetricsMissing".into(),
                            message: format!(
                                "the job succeeded but no value of {metric} was observed"
                            ),
                        };
                    }
                    requeue = Duration::from_secs(2);
                }
            }
        }
        JobState::Failed { reason, message } => {
            return TrialPlan::FailWithPodDetail { reason, message };
        }
    }
    TrialPlan::Write {
        status: Box::new(status),
        requeue,
    }
}

/// Writes the status if it changed; a conflict means someone (an observer) wrote first:
/// the resulting watch event reconciles again.
pub(super) async fn write(
    ctx: &Context,
    trial: &Trial,
    status: &TrialStatus,
    old: &TrialStatus,
) -> Result<(), Error> {
    if status == old {
        return Ok(());
    }
    if status.phase != old.phase {
        tracing::info!(
            trial = %trial.name_any(),
            phase = status.phase.unwrap_or_default().as_str(),
            "trial phase"
        );
    }
    let api: Api<Trial> = Api::namespaced(
        ctx.view.client.clone(),
        &trial.namespace().unwrap_or_default(),
    );
    match apply_trial_status(
        &api,
        &trial.name_any(),
        status,
        trial.resource_version().as_deref(),
    )
    .await
    {
        Ok(w) => {
            ctx.view.wrote(w);
            Ok(())
        }
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Fails the trial with a reason and message (and deletes its Job if it still runs).
/// Fails the trial with its pods' termination detail added to `message` (the one read of
/// the reconcile, and only once its workload has failed).
pub(super) async fn fail_with_pod_detail(
    ctx: &Context,
    trial: &Trial,
    old: &TrialStatus,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let pods: Api<Pod> = Api::namespaced(
        ctx.view.client.clone(),
        &trial.namespace().unwrap_or_default(),
    );
    let list = pods
        .list(&ListParams::default().labels(&format!("{TRIAL_LABEL}={}", trial.name_any())))
        .await?;
    let msg = match pod_failure(&list.items) {
        Some(d) if message.is_empty() => d,
        Some(d) => format!("{message}; {d}"),
        None => message,
    };
    fail(ctx, trial, old, reason, &msg).await
}

pub(super) async fn fail(
    ctx: &Context,
    trial: &Trial,
    old: &TrialStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    let mut status = old.clone();
    status.phase = Some(TrialPhase::Failed);
    if status.completion_time.is_none() {
        status.completion_time = Some(now());
    }
    set_condition(
        &mut status.conditions,
        "Failed",
        true,
        reason,
        message,
        trial.meta().generation,
    );
    write(ctx, trial, &status, old).await?;
    trial_event(&ctx.view.client, trial, true, reason, message.to_string()).await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Point;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn job(ready: i32, cond: Option<(&str, &str)>) -> Job {
        Job {
            status: Some(JobStatus {
                ready: Some(ready),
                conditions: cond.map(|(t, r)| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: "True".into(),
                        reason: Some(r.into()),
                        message: Some("m".into()),
                        last_transition_time: Some(Time(Timestamp::from_second(100).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn pts(v: &[Option<f64>]) -> TrialStatus {
        TrialStatus {
            intermediate: v
                .iter()
                .enumerate()
                .map(|(i, &value)| Point {
                    step: i as i64,
                    value,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn running_job_starts_the_clock_once() {
        let TrialPlan::Write { status, .. } =
            plan(&TrialStatus::default(), &job(1, None), "loss", None, at(50))
        else {
            panic!("a write")
        };
        assert_eq!(status.phase, Some(TrialPhase::Running));
        assert_eq!(status.start_time, Some(Time(at(50))));
        let TrialPlan::Write { status: again, .. } =
            plan(&status, &job(1, None), "loss", None, at(90))
        else {
            panic!("a write")
        };
        assert_eq!(again.start_time, Some(Time(at(50))));
    }

    #[test]
    fn a_trial_running_by_its_reports_stays_running_while_the_job_catches_up() {
        let running = TrialStatus {
            phase: Some(TrialPhase::Running),
            start_time: Some(Time(at(40))),
            ..pts(&[Some(0.5)])
        };
        let TrialPlan::Write { status, .. } = plan(&running, &job(0, None), "loss", None, at(50))
        else {
            panic!("a write")
        };
        assert_eq!(status.phase, Some(TrialPhase::Running));
        assert_eq!(*status, running, "nothing to write");
        let TrialPlan::Write { status, .. } =
            plan(&TrialStatus::default(), &job(0, None), "loss", None, at(50))
        else {
            panic!("a write")
        };
        assert_eq!(status.phase, Some(TrialPhase::Pending));
    }

    #[test]
    fn succeeded_job_completes_with_the_last_value_or_fails_on_nan() {
        let done = job(0, Some(("Complete", "Done")));
        let TrialPlan::Write { status, .. } = plan(
            &pts(&[Some(0.5), Some(0.25)]),
            &done,
            "loss",
            Some(1),
            at(120),
        ) else {
            panic!("a write")
        };
        assert_eq!(status.phase, Some(TrialPhase::Completed));
        assert_eq!(status.value, Some(0.25));
        assert_eq!(status.completion_time, Some(Time(at(100))));
        match plan(&pts(&[Some(0.5), None]), &done, "loss", None, at(120)) {
            TrialPlan::Fail { reason, message } => {
                assert_eq!(reason, "NaNObjective");
                assert!(message.contains("step 1"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn succeeded_without_metrics_waits_for_the_grace_then_fails() {
        let done = job(0, Some(("Complete", "Done")));
        match plan(&TrialStatus::default(), &done, "loss", None, at(110)) {
            TrialPlan::Write { requeue, .. } => assert_eq!(requeue, Duration::from_secs(2)),
            other => panic!("{other:?}"),
        }
        match plan(&TrialStatus::default(), &done, "loss", None, at(131)) {
            TrialPlan::Fail { reason, .. } => assert_eq!(reason, "MetricsMissing"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failed_job_asks_for_the_pods_detail() {
        assert_eq!(
            plan(
                &TrialStatus::default(),
                &job(0, Some(("Failed", "BackoffLimitExceeded"))),
                "loss",
                None,
                at(1)
            ),
            TrialPlan::FailWithPodDetail {
                reason: "BackoffLimitExceeded".into(),
                message: "m".into()
            }
        );
    }
}
