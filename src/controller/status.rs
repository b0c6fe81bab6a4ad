//! Writing status with server-side apply, conditions, and the pure aggregation of a Study's
//! status from its Trials.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::crd::{BestTrial, GpuSeconds, Study, Trial, TrialCounts, TrialPhase, TrialStatus};
use crate::engine::TrialRecord;

/// The field manager of everything the operator writes (one manager, full status each time).
pub const MANAGER: &str = "lopper";
/// The field manager of `status.prunerState` on Studies.
pub const PRUNER_MANAGER: &str = "lopper-pruner";

/// Sets (or replaces) a condition, keeping `lastTransitionTime` when the status is unchanged.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let now = Time(Timestamp::now());
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = now;
        }
        c.status = status;
        c.reason = reason.to_string();
        c.message = message.to_string();
        c.observed_generation = generation;
    } else {
        conds.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now,
            observed_generation: generation,
        });
    }
}

/// Server-side applies a Trial's whole status. With `resource_version` the write only
/// succeeds if nobody wrote in between (409 otherwise: re-read and retry).
pub async fn apply_trial_status(
    api: &Api<Trial>,
    name: &str,
    status: &TrialStatus,
    resource_version: Option<&str>,
) -> Result<Trial, kube::Error> {
    let mut meta = json!({"name": name});
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    let body = json!({
        "apiVersion": Trial::api_version(&()),
        "kind": Trial::kind(&()),
        "metadata": meta,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
}

/// Whether `e` is an HTTP error with this code.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Seconds between two times (never negative).
fn secs(from: &Time, to: Timestamp) -> f64 {
    (to.as_millisecond() - from.0.as_millisecond()).max(0) as f64 / 1000.0
}

/// What a Study's status says about its trials, derived from the Trials alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Aggregate {
    pub counts: TrialCounts,
    pub best: Option<BestTrial>,
    pub gpu: GpuSeconds,
    /// Trial numbers that exist.
    pub numbers: BTreeSet<u64>,
}

/// Aggregates trials (of one study) at time `now`.
/// `records` are `trials` as engine records, in the same order.
pub fn aggregate<T: std::borrow::Borrow<Trial>>(
    study: &Study,
    trials: &[T],
    records: &[TrialRecord],
    gpus_per_trial: u32,
    now: Timestamp,
) -> Aggregate {
    let dir = study.spec.objective.direction;
    let mut a = Aggregate::default();
    let mut completed_durations = Vec::new();
    let mut pruned_used = Vec::new();
    let gpus = f64::from(gpus_per_trial);
    for t in trials {
        let t: &Trial = t.borrow();
        a.numbers.insert(t.spec.number);
        a.counts.created += 1;
        let phase = t.phase();
        match phase {
            TrialPhase::Queued => {
                a.counts.running += 1;
                a.counts.queued += 1;
            }
            TrialPhase::Pending | TrialPhase::Running => a.counts.running += 1,
            TrialPhase::Completed => a.counts.completed += 1,
            TrialPhase::Pruned => a.counts.pruned += 1,
            TrialPhase::Failed => a.counts.failed += 1,
        }
        let st = t.status.as_ref();
        // Runs that ended in a preemption count too; queued time never does (startTime is
        // set once pods run, and cleared on a requeue).
        let earlier = st.and_then(|s| s.preempted_seconds).unwrap_or(0.0);
        let used = earlier
            + match st.and_then(|s| s.start_time.as_ref()) {
                Some(start) => {
                    let end = st
                        .and_then(|s| s.completion_time.as_ref())
                        .map(|c| c.0)
                        .unwrap_or(now);
                    secs(start, end)
                }
                None => 0.0,
            };
        a.gpu.used += used * gpus;
        match phase {
            TrialPhase::Completed => completed_durations.push(used),
            TrialPhase::Pruned => pruned_used.push(used),
            _ => {}
        }
    }
    // The same rule the engine's study policy uses (goal checks), so the two never disagree.
    a.best = crate::engine::policy::best(dir, records).and_then(|(number, value)| {
        let t: &Trial = trials
            .iter()
            .map(|t| t.borrow())
            .find(|t| t.spec.number == number)?;
        Some(BestTrial {
            trial: t.name_any(),
            number,
            value,
            params: t.spec.params.clone(),
        })
    });
    if !completed_durations.is_empty() {
        let full = completed_durations.iter().sum::<f64>() / completed_durations.len() as f64;
        a.gpu.saved_by_pruning = pruned_used.iter().map(|u| (full - u).max(0.0) * gpus).sum();
    }
    a.gpu.used = a.gpu.used.round();
    a.gpu.saved_by_pruning = a.gpu.saved_by_pruning.round();
    a
}

/// The smallest trial numbers below `max` not yet used, at most `n` of them.
pub fn next_numbers(existing: &BTreeSet<u64>, max: u64, n: usize) -> Vec<u64> {
    (0..max).filter(|k| !existing.contains(k)).take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TrialSpec;
    use crate::engine::ParamValue;

    fn ts(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn trial(n: u64, phase: TrialPhase, value: Option<f64>, start: i64, end: Option<i64>) -> Trial {
        let mut params = crate::engine::Params::new();
        params.insert("x".into(), ParamValue::Int(n as i64));
        let mut t = Trial::new(
            &format!("s-{n}"),
            TrialSpec {
                study: "s".into(),
                number: n,
                params,
                invalid: None,
            },
        );
        t.status = Some(TrialStatus {
            phase: Some(phase),
            value,
            start_time: Some(ts(start)),
            completion_time: end.map(ts),
            ..Default::default()
        });
        t
    }

    fn study(goal: Option<f64>) -> Study {
        let mut s = crate::controller::job::tests::study(
            serde_json::json!({"template": {"spec": {"containers": [{"name": "a", "image": "b"}]}}}),
            Some(1),
        );
        s.spec.objective.goal = goal;
        s
    }

    #[test]
    fn aggregates_counts_best_and_gpu_seconds() {
        let trials = vec![
            trial(0, TrialPhase::Completed, Some(0.5), 0, Some(100)),
            trial(1, TrialPhase::Completed, Some(0.2), 0, Some(100)),
            trial(2, TrialPhase::Pruned, Some(0.9), 0, Some(30)),
            trial(3, TrialPhase::Running, None, 100, None),
            trial(5, TrialPhase::Failed, None, 0, Some(10)),
        ];
        let now = Timestamp::from_second(150).unwrap();
        let records: Vec<_> = trials.iter().map(Trial::record).collect();
        let a = aggregate(&study(Some(0.3)), &trials, &records, 2, now);
        assert_eq!(
            a.counts,
            TrialCounts {
                created: 5,
                running: 1,
                queued: 0,
                completed: 2,
                pruned: 1,
                failed: 1
            }
        );
        let best = a.best.unwrap();
        assert_eq!(
            (best.number, best.value, best.trial.as_str()),
            (1, 0.2, "s-1")
        );
        // used: (100 + 100 + 30 + 50 + 10) s × 2 GPUs; saved: (100 − 30) × 2.
        assert_eq!(a.gpu.used, 580.0);
        assert_eq!(a.gpu.saved_by_pruning, 140.0);
        assert_eq!(next_numbers(&a.numbers, 8, 3), vec![4, 6, 7]);
    }

    #[test]
    fn conditions_keep_transition_time() {
        let mut c = Vec::new();
        set_condition(&mut c, "Ready", true, "A", "a", Some(1));
        let t0 = c[0].last_transition_time.clone();
        set_condition(&mut c, "Ready", true, "B", "b", Some(2));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, t0);
        assert_eq!(c[0].reason, "B");
    }
}
