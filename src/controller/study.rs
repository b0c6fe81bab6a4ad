//! Study reconcile: keep `parallelism` trials running until `maxTrials` exist, stop on goal,
//! exhaustion or too many failures, and derive the Study's status from its Trials. When to
//! create a trial and when the study ends is the engine's [`policy`], as in `lopper run`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::job::{controller_ref, gpus_per_trial};
use super::prune::{delete_job, publish_event, study_records};
use super::status::{
    MANAGER, aggregate, apply_trial_status, is_status, next_numbers, set_condition,
};
use super::telemetry::telemetry;
use super::{Context, Error};
use crate::crd::{
    NUMBER_LABEL, STUDY_LABEL, Study, StudyPhase, StudyStatus, Trial, TrialPhase, TrialSpec,
    trial_name,
};
use crate::engine::policy::{self, End, Rules, StudyCounts};
use crate::engine::samplers::{self, Sampler, SamplerSpec, Suggestion};
use crate::engine::space::SearchSpace;
use crate::engine::{Params, TrialRecord, TrialState};

/// Builds what the spec describes (the space, the sampler's spec with the study's default
/// seed, and the sampler), or says what is wrong (the `InvalidSpec` message).
pub fn validate(study: &Study) -> Result<(SearchSpace, SamplerSpec, Box<dyn Sampler>), String> {
    if let Some(msg) = &study.spec.invalid {
        return Err(msg.clone());
    }
    let space = SearchSpace::new(study.spec.parameters.clone())
        .map_err(|e| format!("spec.parameters: {e}"))?;
    let seed = study_seed(study);
    let sampler_spec = study.sampler().with_default_seed(seed);
    let sampler = samplers::build(&sampler_spec).map_err(|e| format!("spec.sampler: {e}"))?;
    crate::engine::pruners::build(&study.pruner()).map_err(|e| format!("spec.pruner: {e}"))?;
    study
        .metrics()
        .validate()
        .map_err(|e| format!("spec.metrics: {e}"))?;
    if let Some(m) = study.spec.max_failed_trials
        && m >= study.spec.max_trials
    {
        return Err("spec.maxFailedTrials must be less than spec.maxTrials".into());
    }
    // The template renders (known placeholders, a JobSpec that reads, the primary container
    // exists): said once here rather than by every trial failing. Params do not matter (an
    // inactive one renders empty, and placeholders only ever fill strings).
    let name = study.name_any();
    let probe = Trial::new(
        &crate::crd::trial_name(&name, 0),
        TrialSpec {
            study: name,
            number: 0,
            params: Params::new(),
            invalid: None,
        },
    );
    super::job::render_job(study, &probe, &[]).map_err(|e| e.to_string())?;
    Ok((space, sampler_spec, sampler))
}

/// A default seed stable for the life of the study (its UID), so a restart proposes the same.
fn study_seed(study: &Study) -> u64 {
    let key = study
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| study.name_any());
    u64::from(crc32fast::hash(key.as_bytes()))
}

/// The parts of the spec the engine's policy reads.
pub fn rules(study: &Study) -> Rules {
    Rules {
        direction: study.spec.objective.direction,
        goal: study.spec.objective.goal,
        max_trials: study.spec.max_trials,
        parallelism: study.spec.parallelism,
        max_failed_trials: study.spec.max_failed_trials,
    }
}

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
    }
    r
}

async fn warm_history(
    ctx: &Context,
    study: &Study,
    space: &SearchSpace,
) -> Result<Vec<TrialRecord>, Error> {
    let Some(ws) = &study.spec.warm_start else {
        return Ok(Vec::new());
    };
    let ns = study.namespace().unwrap_or_default();
    let mut earlier = Vec::new();
    for name in &ws.from_studies {
        if name == &study.name_any() {
            continue;
        }
        for t in study_records(&ctx.client, &ns, name).await? {
            earlier.push(t.record());
        }
    }
    let (kept, skipped) = samplers::warm_start(space, &earlier);
    for s in skipped {
        tracing::debug!(study = %study.name_any(), "warm start skipped {s}");
    }
    Ok(kept)
}

async fn reconcile_inner(study: &Study, ctx: &Context) -> Result<Action, Error> {
    if study.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = study.namespace().unwrap_or_default();
    let name = study.name_any();
    let client = &ctx.client;
    let generation = study.meta().generation;
    let old = study.status.clone().unwrap_or_default();
    let trials = study_records(client, &ns, &name).await?;
    let mut records: Vec<TrialRecord> = trials.iter().map(Trial::record).collect();
    let rules = rules(study);
    let gpus = gpus_per_trial(study);
    let mut agg = aggregate(study, &trials, &records, gpus, Timestamp::now());
    let mut status = StudyStatus {
        conditions: old.conditions.clone(),
        observed_generation: generation,
        ..Default::default()
    };
    let max = u64::from(study.spec.max_trials);
    // A finished study stays finished unless its spec changed.
    let sticky = old
        .phase
        .filter(|p| p.is_finished() && old.observed_generation == generation);

    // Why no more trials are created (the policy's), or why the spec is invalid.
    let mut stop: Option<End> = None;
    let mut invalid: Option<String> = None;
    match validate(study) {
        Err(msg) => {
            set_condition(
                &mut status.conditions,
                "Ready",
                false,
                "InvalidSpec",
                &msg,
                generation,
            );
            if old.phase != Some(StudyPhase::Failed) || old.observed_generation != generation {
                publish_event(
                    client,
                    study.object_ref(&()),
                    true,
                    "InvalidSpec",
                    msg.clone(),
                )
                .await;
            }
            invalid = Some(msg);
        }
        Ok((space, spec, built)) => {
            let uid = study
                .metadata
                .uid
                .clone()
                .unwrap_or_else(|| study.name_any());
            let sampler = ctx.samplers.get(&uid, &spec, built);
            set_condition(
                &mut status.conditions,
                "Ready",
                true,
                "SpecValid",
                "the spec is valid",
                generation,
            );
            stop = policy::stop(&rules, &records);
            if stop.is_none() && sticky.is_none() {
                let counts = StudyCounts::of(&records);
                let slots = policy::slots(&rules, &counts, counts.running) as usize;
                let numbers = next_numbers(&agg.numbers, max, slots);
                if !numbers.is_empty() {
                    let mut history = warm_history(ctx, study, &space).await?;
                    history.extend(records.iter().cloned());
                    for n in numbers {
                        match sampler.suggest(&space, study.spec.objective.direction, &history, n) {
                            Ok(Suggestion::Params(params)) => {
                                create_trial(ctx, study, n, params.clone()).await?;
                                let mut r = TrialRecord::new(n);
                                r.params = params;
                                r.state = TrialState::Running;
                                records.push(r.clone());
                                history.push(r);
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
                                    &mut status.conditions,
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
        stop = policy::stop(&rules, &records);
    }
    let counts = StudyCounts::of(&records);
    // How the study ended (None: it has not, or its spec is invalid).
    let end = match (&invalid, &stop) {
        (None, Some(s)) => policy::outcome(s, &counts, counts.running),
        _ => None,
    };
    // The condition reason and message of a failure.
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

    // A study that ended early stops its running trials.
    if phase == StudyPhase::Failed && c.running > 0 {
        let why = failure
            .as_ref()
            .map(|(r, m)| format!("study failed ({r}): {m}"))
            .unwrap_or_else(|| "study failed".into());
        stop_running_trials(ctx, &ns, &trials, &why).await?;
    }

    let running_msg = format!("{} trials pending or running", c.running);
    set_condition(
        &mut status.conditions,
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
    match (phase, &failure, &end) {
        (StudyPhase::Failed, Some((reason, msg)), _) => {
            set_condition(
                &mut status.conditions,
                "Failed",
                true,
                reason,
                msg,
                generation,
            );
            set_condition(
                &mut status.conditions,
                "Succeeded",
                false,
                reason,
                msg,
                generation,
            );
        }
        (StudyPhase::Succeeded, None, Some(e)) => {
            let msg = e.message();
            set_condition(
                &mut status.conditions,
                "Succeeded",
                true,
                e.reason(),
                &msg,
                generation,
            );
            set_condition(
                &mut status.conditions,
                "Failed",
                false,
                e.reason(),
                &msg,
                generation,
            );
        }
        _ if sticky.is_some() => {}
        _ => {
            let msg = match &stop {
                Some(s) => format!("{}: waiting for {} running trials", s.reason(), c.running),
                None => "in progress".to_string(),
            };
            let reason = stop.as_ref().map(End::reason).unwrap_or("InProgress");
            set_condition(
                &mut status.conditions,
                "Succeeded",
                false,
                reason,
                &msg,
                generation,
            );
            set_condition(
                &mut status.conditions,
                "Failed",
                false,
                reason,
                &msg,
                generation,
            );
        }
    }
    status.phase = Some(phase);
    status.progress = Some(format!("{}/{}", c.completed, study.spec.max_trials));
    status.best = agg.best.clone();
    status.gpu_seconds = Some(agg.gpu.clone());
    status.trials = Some(c.clone());

    let t = telemetry();
    for p in TrialPhase::ALL {
        let n = trials.iter().filter(|t| t.phase() == p).count() as i64;
        t.trials
            .with_label_values(&[ns.as_str(), name.as_str(), p.as_str()])
            .set(n);
    }
    t.gpu_seconds_used
        .with_label_values(&[ns.as_str(), name.as_str()])
        .set(agg.gpu.used);
    t.gpu_seconds_saved
        .with_label_values(&[ns.as_str(), name.as_str()])
        .set(agg.gpu.saved_by_pruning);

    let mut cmp = old.clone();
    cmp.pruner_state = None;
    if cmp != status || old.phase != Some(phase) {
        if old.phase != Some(phase) {
            tracing::info!(study = %name, namespace = %ns, phase = phase.as_str(), "study phase");
        }
        let api: Api<Study> = Api::namespaced(client.clone(), &ns);
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
    Ok(if c.running > 0 {
        // Trial changes wake us; this only refreshes GPU-seconds.
        Action::requeue(Duration::from_secs(30))
    } else {
        Action::await_change()
    })
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
    let api: Api<Trial> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &trial).await {
        Ok(_) => {
            tracing::info!(study = %study.name_any(), trial = %name, "trial created");
            Ok(())
        }
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Marks every active trial Failed (reason StudyFailed) and deletes its Job.
async fn stop_running_trials(
    ctx: &Context,
    ns: &str,
    trials: &[Trial],
    why: &str,
) -> Result<(), Error> {
    let api: Api<Trial> = Api::namespaced(ctx.client.clone(), ns);
    for t in trials.iter().filter(|t| !t.phase().is_finished()) {
        let mut s = t.status.clone().unwrap_or_default();
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
        match apply_trial_status(&api, &t.name_any(), &s, t.resource_version().as_deref()).await {
            Ok(_) => {}
            // Someone wrote in between (or it is gone): the next reconcile retries.
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => continue,
            Err(e) => return Err(e.into()),
        }
        let job = s.job.clone().unwrap_or_else(|| t.name_any());
        delete_job(&ctx.client, ns, &job).await?;
    }
    Ok(())
}
