//! Study reconcile: keep `parallelism` trials running until `maxTrials` exist, stop on goal,
//! exhaustion or too many failures, and derive the Study's status from its Trials. When to
//! create a trial and when the study ends is the engine's [`policy`], as in `lopper run`.
//!
//! Three phases: read (the view's stores and the study's book, no API request), [`plan`]
//! (pure: which trials to create with which parameters, which to stop, what status to
//! write), and [`apply`] (the writes, each idempotent: trial names are deterministic, an
//! AlreadyExists is success, status is server-side applied).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::job::{controller_ref, gpus_per_trial};
use super::prune::{delete_job, publish_event};
use super::status::{
    MANAGER, aggregate, apply_trial_status, is_status, next_numbers, set_condition,
};
use super::telemetry::telemetry;
use super::view::lock;
use super::{Context, Error};
use crate::crd::{
    NUMBER_LABEL, STUDY_LABEL, Study, StudyPhase, StudyStatus, Trial, TrialPhase, TrialSpec,
    trial_name,
};
use crate::engine::budget::Spent;
use crate::engine::policy::{self, End, StudyCounts};
use crate::engine::samplers::{self, History, Sampler, Suggestion};
use crate::engine::space::SearchSpace;
use crate::engine::{Params, TrialRecord, TrialState};

pub use crate::workload::spec::{rules, validate};

pub async fn reconcile(study: Arc<Study>, ctx: Arc<Context>) -> Result<Action, Error> {
    let t = telemetry();
    t.reconciles.with_label_values(&["study"]).inc();
    let timer = t
        .reconcile_duration
        .with_label_values(&["study"])
        .start_timer();
    let r = reconcile_inner(&study, &ctx).await;
    timer.observe_duration();
    if r.is_err() {
        t.reconcile_errors.with_label_values(&["study"]).inc();
    } else {
        ctx.succeeded(&super::object_key(study.as_ref()));
    }
    r
}

/// The conditions the Study reconcile owns (field manager [`MANAGER`]); others, such as the
/// metric sources' `MetricsUnavailable`, belong to their own managers and are never written
/// here.
pub const OWNED_CONDITIONS: [&str; 4] = ["Ready", "Running", "Succeeded", "Failed"];

/// GPU-seconds of running trials are refreshed at this granularity, so a Study's status is
/// not rewritten at every reconcile just because time passed.
pub const GPU_REFRESH_SECONDS: i64 = 30;

/// How often a study with a budget checks its spend while trials run (it may overshoot by
/// what its trials report in this time, or by their remaining steps with `onSpent: finish`).
pub const BUDGET_CHECK_SECONDS: u64 = 2;

/// What the reconcile will do.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyPlan {
    /// Trials to create: number and sampled parameters.
    pub create: Vec<(u64, Params)>,
    /// Trials to stop (the study failed): name, and the condition message.
    pub stop: Vec<String>,
    pub stop_message: String,
    /// The stopped trials count as pruned (a spent budget), not failed (a failed study).
    pub stop_pruned: bool,
    /// The status to apply (owned conditions only), when it differs from the stored one.
    pub status: Option<StudyStatus>,
    /// An `InvalidSpec` Event to publish (the spec or its generation changed).
    pub invalid_event: Option<String>,
    pub phase: StudyPhase,
    pub running: u32,
}

/// The inputs of [`plan`], read from the view.
pub struct Observed<'a> {
    pub study: &'a Study,
    pub trials: &'a [Arc<Trial>],
    /// The study's trials as engine records (the book), sorted by number.
    pub records: &'a [TrialRecord],
    /// Warm-start trials (earlier studies), first in the sampler's history.
    pub warm: &'a [TrialRecord],
    pub now: Timestamp,
}

/// Decides everything the reconcile writes (pure; `sampler` only computes).
pub fn plan(o: &Observed<'_>, checked: Result<(&SearchSpace, &dyn Sampler), String>) -> StudyPlan {
    let study = o.study;
    let generation = study.meta().generation;
    let old = study.status.clone().unwrap_or_default();
    // Copied only when trials are created (the common reconcile creates none).
    let mut records: std::borrow::Cow<'_, [TrialRecord]> = std::borrow::Cow::Borrowed(o.records);
    let rules = rules(study);
    let gpus = gpus_per_trial(study);
    let now = Timestamp::from_second(
        o.now.as_second() - o.now.as_second().rem_euclid(GPU_REFRESH_SECONDS),
    )
    .unwrap_or(o.now);
    let mut agg = aggregate(study, o.trials, &records, gpus, now);
    let mut conditions: Vec<_> = old
        .conditions
        .iter()
        .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let max = study.spec.max_trials.map_or(u64::MAX, u64::from);
    // A finished study stays finished unless its spec changed.
    let sticky = old
        .phase
        .filter(|p| p.is_finished() && old.observed_generation == generation);
    let mut create = Vec::new();
    let mut stop: Option<End> = None;
    let mut invalid: Option<String> = None;
    let mut invalid_event = None;
    match checked {
        Err(msg) => {
            set_condition(
                &mut conditions,
                "Ready",
                false,
                "InvalidSpec",
                &msg,
                generation,
            );
            if old.phase != Some(StudyPhase::Failed) || old.observed_generation != generation {
                invalid_event = Some(msg.clone());
            }
            invalid = Some(msg);
        }
        Ok((space, sampler)) => {
            set_condition(
                &mut conditions,
                "Ready",
                true,
                "SpecValid",
                "the spec is valid",
                generation,
            );
            stop = policy::stop(&rules, &records, agg.gpu.used);
            if stop.is_none() && sticky.is_none() {
                let counts = StudyCounts::of(&records);
                let slots = policy::slots(&rules, &counts, counts.running) as usize;
                let numbers = next_numbers(&agg.numbers, max, slots);
                if !numbers.is_empty() {
                    for n in numbers {
                        let history = History::with_warm(o.warm, &records);
                        match sampler.suggest(space, study.spec.objective.direction, history, n) {
                            Ok(Suggestion::Params(params)) => {
                                create.push((n, params.clone()));
                                let mut r = TrialRecord::new(n);
                                r.params = params;
                                r.state = TrialState::Running;
                                records.to_mut().push(r);
                                agg.numbers.insert(n);
                                agg.counts.created += 1;
                                agg.counts.running += 1;
                            }
                            Ok(Suggestion::Exhausted) => {
                                stop = Some(End::SpaceExhausted);
                                break;
                            }
                            Err(e) => {
                                let msg = format!("spec.sampler: {e}");
                                set_condition(
                                    &mut conditions,
                                    "Ready",
                                    false,
                                    "InvalidSpec",
                                    &msg,
                                    generation,
                                );
                                invalid = Some(msg);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    let c = agg.counts.clone();
    if stop.is_none() && invalid.is_none() {
        stop = policy::stop(&rules, &records, agg.gpu.used);
    }
    let counts = StudyCounts::of(&records);
    let end = match (&invalid, &stop) {
        (None, Some(s)) => policy::outcome(s, &counts, counts.running),
        _ => None,
    };
    let failure: Option<(&str, String)> = match (&invalid, &end) {
        (Some(msg), _) => Some(("InvalidSpec", msg.clone())),
        (None, Some(e)) if e.failed() => Some((e.reason(), e.message())),
        _ => None,
    };
    let phase = if let Some(p) = sticky {
        p
    } else if failure.is_some() {
        StudyPhase::Failed
    } else if end.is_some() {
        StudyPhase::Succeeded
    } else if c.created > 0 {
        StudyPhase::Running
    } else {
        StudyPhase::Pending
    };
    // A study that ended early stops its running trials (a spent budget with `onSpent:
    // stop` too, its trials counting as pruned).
    let mut stop_trials = Vec::new();
    let mut stop_message = String::new();
    let budget_stop = end
        .as_ref()
        .filter(|e| matches!(e, End::BudgetSpent { .. }) && e.stops_running());
    if (phase == StudyPhase::Failed || budget_stop.is_some()) && c.running > 0 {
        stop_message = match (&failure, budget_stop) {
            (Some((r, m)), _) => format!("study failed ({r}): {m}"),
            (None, Some(e)) => e.message(),
            (None, None) => "study failed".into(),
        };
        stop_trials = o
            .trials
            .iter()
            .filter(|t| !t.phase().is_finished())
            .map(|t| t.name_any())
            .collect();
    }
    let running_msg = format!("{} trials pending or running", c.running);
    set_condition(
        &mut conditions,
        "Running",
        phase == StudyPhase::Running,
        if phase == StudyPhase::Running {
            "TrialsRunning"
        } else {
            "NotRunning"
        },
        &running_msg,
        generation,
    );
    let mut both = |reason: &str, msg: &str, ok: Option<bool>| {
        set_condition(
            &mut conditions,
            "Succeeded",
            ok == Some(true),
            reason,
            msg,
            generation,
        );
        set_condition(
            &mut conditions,
            "Failed",
            ok == Some(false),
            reason,
            msg,
            generation,
        );
    };
    match (phase, &failure, &end) {
        (StudyPhase::Failed, Some((reason, msg)), _) => both(reason, msg, Some(false)),
        (StudyPhase::Succeeded, None, Some(e)) => both(e.reason(), &e.message(), Some(true)),
        _ if sticky.is_some() => {}
        _ => {
            let msg = match &stop {
                Some(s) => format!("{}: waiting for {} running trials", s.reason(), c.running),
                None => "in progress".to_string(),
            };
            let reason = stop.as_ref().map(End::reason).unwrap_or("InProgress");
            both(reason, &msg, None);
        }
    }
    let status = StudyStatus {
        phase: Some(phase),
        observed_generation: generation,
        conditions,
        progress: Some(match study.spec.max_trials {
            Some(max) => format!("{}/{max}", c.completed),
            None => format!("{}/-", c.completed),
        }),
        budget: study
            .spec
            .budget
            .map(|b| b.status(&Spent::of(&records, agg.gpu.used))),
        best: agg.best.clone(),
        gpu_seconds: Some(agg.gpu.clone()),
        trials: Some(c.clone()),
        pruner_state: None,
    };
    let mut cmp = old.clone();
    cmp.pruner_state = None;
    cmp.conditions
        .retain(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()));
    StudyPlan {
        create,
        stop: stop_trials,
        stop_message,
        stop_pruned: budget_stop.is_some() && failure.is_none(),
        status: (cmp != status).then_some(status),
        invalid_event,
        phase,
        running: c.running,
    }
}

/// Warm-start trials of the earlier studies named in the spec, read from the view.
fn warm_history(ctx: &Context, study: &Study, space: &SearchSpace) -> Vec<TrialRecord> {
    let Some(ws) = &study.spec.warm_start else {
        return Vec::new();
    };
    let ns = study.namespace().unwrap_or_default();
    let mut earlier = Vec::new();
    for name in &ws.from_studies {
        if name == &study.name_any() {
            continue;
        }
        for t in ctx.view.study_trials(&ns, name) {
            let sealed = ctx
                .view
                .sealed_points(&ns, &t.name_any(), t.curve_chunks())
                .unwrap_or_default();
            earlier.push(t.record_with(&sealed));
        }
    }
    earlier.sort_by_key(|r| r.number);
    let (kept, skipped) = samplers::warm_start(space, &earlier);
    for s in skipped {
        tracing::debug!(study = %study.name_any(), "warm start skipped {s}");
    }
    kept
}

async fn reconcile_inner(study: &Study, ctx: &Context) -> Result<Action, Error> {
    if study.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = study.namespace().unwrap_or_default();
    let name = study.name_any();
    // Read: the view only.
    let trials = ctx.view.study_trials(&ns, &name);
    let book = ctx.view.book(study);
    let records: Vec<TrialRecord> = {
        let mut b = lock(&book);
        b.sync(&trials, &|t: &Trial, count| {
            ctx.view.sealed_points(&ns, &t.name_any(), count)
        });
        b.records().to_vec()
    };
    let mut valid = None;
    let mut invalid = None;
    let mut warm = Vec::new();
    match validate(study) {
        Ok((space, spec, built)) => {
            let uid = study.uid().unwrap_or_else(|| name.clone());
            let sampler = ctx.view.samplers.get(&uid, &spec, built);
            warm = warm_history(ctx, study, &space);
            valid = Some((space, sampler));
        }
        Err(msg) => invalid = Some(msg),
    }
    let checked = match (&valid, invalid) {
        (Some((space, sampler)), None) => Ok((space, sampler.as_ref())),
        (_, Some(msg)) => Err(msg),
        (None, None) => Err("spec: not validated".to_string()),
    };
    // Plan: pure.
    let p = plan(
        &Observed {
            study,
            trials: &trials,
            records: &records,
            warm: &warm,
            now: Timestamp::now(),
        },
        checked,
    );
    // Apply.
    apply(ctx, study, &p).await?;
    let t = telemetry();
    for phase in TrialPhase::ALL {
        let n = trials.iter().filter(|t| t.phase() == phase).count() as i64;
        t.trials
            .with_label_values(&[ns.as_str(), name.as_str(), phase.as_str()])
            .set(n);
    }
    if let Some(g) = p.status.as_ref().and_then(|s| s.gpu_seconds.as_ref()) {
        t.gpu_seconds_used
            .with_label_values(&[ns.as_str(), name.as_str()])
            .set(g.used);
        t.gpu_seconds_saved
            .with_label_values(&[ns.as_str(), name.as_str()])
            .set(g.saved_by_pruning);
    }
    ctx.gauged(&ns, &name);
    Ok(if p.running > 0 && study.spec.budget.is_some() {
        // Reports do not wake a study (that would cost a reconcile per report at scale):
        // a budgeted one looks at its spend this often while trials run.
        Action::requeue(Duration::from_secs(BUDGET_CHECK_SECONDS))
    } else if p.running > 0 {
        // Trial phase changes wake us; this only refreshes GPU-seconds.
        Action::requeue(Duration::from_secs(GPU_REFRESH_SECONDS as u64))
    } else {
        Action::await_change()
    })
}

/// The writes of a plan, in an order that is safe to interrupt: trials first (deterministic
/// names), then stopping trials, then the status.
pub async fn apply(ctx: &Context, study: &Study, p: &StudyPlan) -> Result<(), Error> {
    let ns = study.namespace().unwrap_or_default();
    let name = study.name_any();
    if let Some(msg) = &p.invalid_event {
        publish_event(
            &ctx.view.client,
            study.object_ref(&()),
            true,
            "InvalidSpec",
            msg.clone(),
        )
        .await;
    }
    for (n, params) in &p.create {
        create_trial(ctx, study, *n, params.clone()).await?;
    }
    if !p.stop.is_empty() {
        stop_running_trials(ctx, &ns, &p.stop, &p.stop_message, p.stop_pruned).await?;
    }
    if let Some(status) = &p.status {
        let old_phase = study.status.as_ref().and_then(|s| s.phase);
        if old_phase != status.phase {
            tracing::info!(study = %name, namespace = %ns, phase = p.phase.as_str(), "study phase");
        }
        let api: Api<Study> = Api::namespaced(ctx.view.client.clone(), &ns);
        let body = json!({
            "apiVersion": Study::api_version(&()),
            "kind": Study::kind(&()),
            "metadata": {"name": name},
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    Ok(())
}

/// Creates trial `number` under its deterministic name; AlreadyExists is success (a racing
/// reconcile or an earlier operator made it).
async fn create_trial(
    ctx: &Context,
    study: &Study,
    number: u64,
    params: crate::engine::Params,
) -> Result<(), Error> {
    let ns = study.namespace().unwrap_or_default();
    let name = trial_name(&study.name_any(), number);
    let mut trial = Trial::new(
        &name,
        TrialSpec {
            study: study.name_any(),
            number,
            params,
            invalid: None,
        },
    );
    trial.metadata.namespace = Some(ns.clone());
    trial.metadata.labels = Some(
        [
            (STUDY_LABEL.to_string(), study.name_any()),
            (NUMBER_LABEL.to_string(), number.to_string()),
        ]
        .into(),
    );
    trial.metadata.owner_references = Some(vec![controller_ref(study)]);
    let api: Api<Trial> = Api::namespaced(ctx.view.client.clone(), &ns);
    match api.create(&PostParams::default(), &trial).await {
        Ok(created) => {
            tracing::info!(study = %study.name_any(), trial = %name, "trial created");
            ctx.view.wrote(created);
            Ok(())
        }
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Marks each named trial Failed (reason StudyFailed) and deletes its Job.
async fn stop_running_trials(
    ctx: &Context,
    ns: &str,
    names: &[String],
    why: &str,
    pruned: bool,
) -> Result<(), Error> {
    let api: Api<Trial> = Api::namespaced(ctx.view.client.clone(), ns);
    for name in names {
        let Some(t) = ctx.view.trial(ns, name) else {
            continue;
        };
        if t.phase().is_finished() {
            continue;
        }
        let mut s = t.status.clone().unwrap_or_default();
        if pruned {
            let d = crate::engine::pruners::Decision::prune("BudgetSpent", why.to_string());
            super::observe::mark_pruned(&mut s, &d, t.meta().generation);
        } else {
            s.phase = Some(TrialPhase::Failed);
            s.completion_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::now(),
            ));
            set_condition(
                &mut s.conditions,
                "Failed",
                true,
                "StudyFailed",
                why,
                t.meta().generation,
            );
        }
        match apply_trial_status(&api, name, &s, t.resource_version().as_deref()).await {
            Ok(w) => ctx.view.wrote(w),
            // Someone wrote in between (or it is gone): the next reconcile retries.
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => continue,
            Err(e) => return Err(e.into()),
        }
        let job = s.job.clone().unwrap_or_else(|| name.clone());
        delete_job(&ctx.view.client, ns, &job).await?;
        ctx.view.deleted_job(ns, &job);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Point, TrialStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn study(max_failed: Option<u32>) -> Study {
        let mut s: Study = serde_json::from_value(serde_json::json!({
            "apiVersion": "lopper.dev/v1alpha1", "kind": "Study",
            "metadata": {"name": "s", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {
                "objective": {"metric": "loss", "direction": "minimize"},
                "parameters": [{"name": "x", "float": {"low": 0.0, "high": 1.0}}],
                "sampler": {"random": {"seed": 1}},
                "maxTrials": 4, "parallelism": 2,
                "trialTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "b"}]}}}}
            }
        }))
        .unwrap();
        s.spec.max_failed_trials = max_failed;
        s
    }

    fn trial(n: u64, phase: TrialPhase) -> Arc<Trial> {
        let mut t = Trial::new(
            &trial_name("s", n),
            TrialSpec {
                study: "s".into(),
                number: n,
                params: Default::default(),
                invalid: None,
            },
        );
        t.status = Some(TrialStatus {
            phase: Some(phase),
            intermediate: vec![Point {
                step: 0,
                value: Some(n as f64),
            }],
            value: (phase == TrialPhase::Completed).then_some(n as f64),
            ..Default::default()
        });
        Arc::new(t)
    }

    fn run_plan(s: &Study, trials: &[Arc<Trial>], now: i64) -> StudyPlan {
        let records: Vec<TrialRecord> = trials.iter().map(|t| t.record()).collect();
        let (space, _, sampler) = validate(s).unwrap();
        plan(
            &Observed {
                study: s,
                trials,
                records: &records,
                warm: &[],
                now: Timestamp::from_second(now).unwrap(),
            },
            Ok((&space, sampler.as_ref())),
        )
    }

    #[test]
    fn a_new_study_creates_parallelism_trials_with_dense_numbers() {
        let p = run_plan(&study(None), &[], 1_000);
        assert_eq!(p.create.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(p.phase, StudyPhase::Running);
        assert!(p.stop.is_empty());
        let st = p.status.expect("a status to write");
        assert_eq!(st.trials.unwrap().running, 2);
    }

    #[test]
    fn slots_fill_lowest_free_numbers_and_the_status_keeps_only_owned_conditions() {
        let mut s = study(None);
        let mut st = StudyStatus::default();
        st.conditions.push(Condition {
            type_: "MetricsUnavailable".into(),
            status: "True".into(),
            reason: "PrometheusUnreachable".into(),
            message: "down".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::now(),
            ),
            observed_generation: None,
        });
        s.status = Some(st);
        let trials = [
            trial(0, TrialPhase::Completed),
            trial(2, TrialPhase::Running),
        ];
        let p = run_plan(&s, &trials, 1_000);
        assert_eq!(p.create.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1]);
        let status = p.status.unwrap();
        assert!(
            status
                .conditions
                .iter()
                .all(|c| OWNED_CONDITIONS.contains(&c.type_.as_str())),
            "another manager's condition is never written by the reconcile"
        );
    }

    #[test]
    fn gpu_hours_of_pruned_and_running_trials_spend_the_budget() {
        use crate::engine::budget::{Budget, OnSpent};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let mut s = study(None);
        s.spec.max_trials = None;
        s.spec.trial_template.gpus = Some(2);
        s.spec.budget = Some(Budget {
            steps: None,
            gpu_hours: Some(1.0),
            on_spent: OnSpent::Stop,
        });
        let timed = |n: u64, phase: TrialPhase, end: Option<i64>| {
            let mut t = (*trial(n, phase)).clone();
            let st = t.status.as_mut().unwrap();
            st.start_time = Some(Time(Timestamp::from_second(0).unwrap()));
            st.completion_time = end.map(|e| Time(Timestamp::from_second(e).unwrap()));
            Arc::new(t)
        };
        // A pruned trial used 900 s on 2 GPUs; the running one as long, at 900 s.
        let trials = [
            timed(0, TrialPhase::Pruned, Some(900)),
            timed(1, TrialPhase::Running, None),
        ];
        let early = run_plan(&s, &trials, 840);
        assert_eq!(early.create.len(), 1, "0.97 GPU-hours: one more trial");
        let b = early.status.unwrap().budget.unwrap();
        assert_eq!(
            (b.gpu_hours_spent, b.gpu_hours_left),
            (Some(0.97), Some(0.03))
        );
        let p = run_plan(&s, &trials, 900);
        assert!(p.create.is_empty());
        assert_eq!(p.phase, StudyPhase::Succeeded);
        assert_eq!(p.stop, vec!["s-1".to_string()]);
        assert!(p.stop_pruned, "stopped by the budget, not failed");
        let st = p.status.unwrap();
        let b = st.budget.unwrap();
        assert_eq!(b.summary, "1/1 GPU-h");
        assert_eq!(b.gpu_hours_left, Some(0.0));
        let c = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Succeeded")
            .unwrap();
        assert_eq!(c.reason, "BudgetSpent");
        assert_eq!(st.progress.as_deref(), Some("0/-"));
    }

    #[test]
    fn too_many_failures_stop_the_running_trials() {
        let s = study(Some(1));
        let trials = [
            trial(0, TrialPhase::Failed),
            trial(1, TrialPhase::Failed),
            trial(2, TrialPhase::Running),
        ];
        let p = run_plan(&s, &trials, 1_000);
        assert_eq!(p.phase, StudyPhase::Failed);
        assert!(p.create.is_empty());
        assert_eq!(p.stop, vec!["s-2".to_string()]);
        assert!(
            p.stop_message.contains("study failed"),
            "{}",
            p.stop_message
        );
    }

    #[test]
    fn an_unchanged_study_writes_nothing_within_the_gpu_refresh() {
        let mut s = study(None);
        let trials: Vec<_> = (0..4).map(|n| trial(n, TrialPhase::Running)).collect();
        let first = run_plan(&s, &trials, 1_000).status.unwrap();
        s.status = Some(first);
        assert_eq!(run_plan(&s, &trials, 1_000 + 5).status, None);
        assert!(
            run_plan(&s, &trials, 1_000 + 35).status.is_none(),
            "no start times, no GPU time"
        );
    }
}
