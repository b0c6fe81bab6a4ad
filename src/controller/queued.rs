//! Trials behind a Kueue queue: the phase a new workload starts in, and what a preemption
//! (the workload suspended again after it ran) does, as `spec.onPreemption` says.

use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::runtime::controller::Action;

use super::prune::trial_event;
use super::status::set_condition;
use super::trial::{fail, write};
use super::{Context, Error};
use crate::crd::{OnPreemption, Study, Trial, TrialPhase, TrialStatus};

/// The phase of a trial whose workload was just created: `Queued` when Kueue must admit it
/// (created suspended), else `Pending`.
pub fn created_phase(study: &Study) -> TrialPhase {
    if study.spec.queue_name.is_some() {
        TrialPhase::Queued
    } else {
        TrialPhase::Pending
    }
}

/// The status of a trial requeued after a preemption at `now` (pure): back to `Queued`, the
/// run so far kept in `preemptedSeconds` (it used GPUs), the clock stopped until readmitted.
pub fn requeued(
    old: &TrialStatus,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> TrialStatus {
    let mut s = old.clone();
    if let Some(start) = s.start_time.take() {
        let ran = (now.as_millisecond() - start.0.as_millisecond()).max(0) as f64 / 1000.0;
        s.preempted_seconds = Some(s.preempted_seconds.unwrap_or(0.0) + ran);
    }
    s.preemptions = Some(s.preemptions.unwrap_or(0) + 1);
    s.phase = Some(TrialPhase::Queued);
    set_condition(
        &mut s.conditions,
        "Preempted",
        true,
        "Preempted",
        message,
        generation,
    );
    s
}

/// Acts on a preemption: requeue (the workload stays; Kueue admits it again) or fail with
/// reason `Preempted` (the finished trial's workload is then deleted).
pub async fn preempted(
    ctx: &Context,
    trial: &Trial,
    old: &TrialStatus,
    study: &Study,
    message: &str,
) -> Result<Action, Error> {
    match study.spec.on_preemption.unwrap_or_default() {
        OnPreemption::Fail => fail(ctx, trial, old, "Preempted", message).await,
        OnPreemption::Requeue => {
            let status = requeued(old, message, trial.meta().generation, Timestamp::now());
            write(ctx, trial, &status, old).await?;
            let n = status.preemptions.unwrap_or(1);
            trial_event(
                &ctx.view.client,
                trial,
                true,
                "Preempted",
                format!("{message}; requeued (preemption {n})"),
            )
            .await;
            Ok(Action::requeue(std::time::Duration::from_secs(60)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::trial::{JobState, TrialPlan, plan_state};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn suspended_after_running_is_a_preemption_before_it_is_a_wait() {
        let queued = TrialStatus {
            phase: Some(TrialPhase::Queued),
            ..Default::default()
        };
        let TrialPlan::Write { status, .. } =
            plan_state(&queued, JobState::Queued, None, "loss", None, at(10))
        else {
            panic!("a write")
        };
        assert_eq!(status.phase, Some(TrialPhase::Queued));
        let running = TrialStatus {
            phase: Some(TrialPhase::Running),
            start_time: Some(Time(at(100))),
            ..Default::default()
        };
        assert!(matches!(
            plan_state(&running, JobState::Queued, None, "loss", None, at(160)),
            TrialPlan::Preempted { .. }
        ));
        let s = requeued(&running, "evicted", Some(1), at(160));
        assert_eq!(s.phase, Some(TrialPhase::Queued));
        assert_eq!(s.start_time, None);
        assert_eq!(s.preempted_seconds, Some(60.0));
        assert_eq!(s.preemptions, Some(1));
        assert!(s.conditions.iter().any(|c| c.type_ == "Preempted"));
        // Readmitted and preempted again: both runs count.
        let mut again = s.clone();
        again.start_time = Some(Time(at(200)));
        let s2 = requeued(&again, "evicted", Some(1), at(230));
        assert_eq!(s2.preempted_seconds, Some(90.0));
        assert_eq!(s2.preemptions, Some(2));
    }
}
