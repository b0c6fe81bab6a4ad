//! The single entry point for observed metrics: every metric source (logs, Prometheus, push)
//! and the tests call [`observe`].
//!
//! It appends new `(step, value)` points to the trial's curve (a repeated or lower step is
//! ignored, as Optuna ignores a second report of a step; NaN is kept as `null`, ±inf
//! dropped; long curves are sealed into chunks, see [`crate::crd::curve`]), asks the study's
//! pruner right away against the study's [`Book`](super::book::Book), and writes the Trial's
//! status once. On a "prune" the Trial becomes `Pruned` with a condition in that same write,
//! then its Job is deleted with background propagation and an Event is published.
//!
//! Steady state: no API read, one write (the Trial's status, carrying the `resourceVersion`
//! it was computed from). Reports of one trial that arrive while a write is in flight are
//! coalesced into the next write. A 409 (someone else wrote) costs one GET and a retry with
//! backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use super::prune::{delete_job, rungs_to_status, save_pruner_state, trial_event};
use super::status::{apply_trial_status, is_status, set_condition};
use super::telemetry::telemetry;
use super::view::{View, lock};
use crate::crd::curve::{self, CurveChunk};
use crate::crd::{Point, Trial, TrialPhase, TrialStatus};
use crate::engine::pruners::Decision;

/// What [`observe`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObserveOutcome {
    /// How many of the given points were stored.
    pub recorded: usize,
    /// Whether the trial is (now) pruned: the trainer should stop.
    pub prune: bool,
}

/// Why [`observe`] stored nothing.
#[derive(Clone, Debug, thiserror::Error)]
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
    Kube(String),
    #[error("pruner of study {study}: {message}")]
    Pruner { study: String, message: String },
    #[error("trial {0}: too many concurrent writes, giving up")]
    Conflict(String),
}

impl From<kube::Error> for ObserveError {
    fn from(e: kube::Error) -> Self {
        ObserveError::Kube(e.to_string())
    }
}

/// Reports of one trial waiting for the next write.
#[derive(Default)]
struct Queue {
    /// (ticket, points) not yet written.
    waiting: Vec<(u64, Vec<(i64, f64)>)>,
    issued: u64,
    /// Each processed ticket's outcome, until its caller takes it.
    done: HashMap<u64, Result<ObserveOutcome, ObserveError>>,
}

/// One trial's queue and write lock.
#[derive(Default)]
pub struct Slot {
    queue: Mutex<Queue>,
    write: tokio::sync::Mutex<()>,
}

/// The slots of the trials being reported (by namespace and name).
#[derive(Default)]
pub struct Slots(Mutex<HashMap<(String, String), Arc<Slot>>>);

impl Slots {
    fn get(&self, ns: &str, name: &str) -> Arc<Slot> {
        let mut m = lock(&self.0);
        if m.len() > 4096 {
            // Idle slots (nobody queued or writing) are dropped now and then.
            m.retain(|_, s| Arc::strong_count(s) > 1);
        }
        m.entry((ns.to_string(), name.to_string()))
            .or_default()
            .clone()
    }
}

/// Appends points to a trial and runs the pruning decision (see the module docs).
/// An empty `points` just re-runs a pending decision (used by the Trial reconciler).
pub async fn observe(
    view: &View,
    namespace: &str,
    trial: &str,
    points: &[(i64, f64)],
) -> Result<ObserveOutcome, ObserveError> {
    if !view.watches(namespace) {
        return Err(ObserveError::NotFound(trial.into()));
    }
    let slot = view.slots.get(namespace, trial);
    let ticket = {
        let mut q = lock(&slot.queue);
        q.issued += 1;
        let t = q.issued;
        q.waiting.push((t, points.to_vec()));
        t
    };
    let _w = slot.write.lock().await;
    if let Some(r) = lock(&slot.queue).done.remove(&ticket) {
        // An earlier holder wrote our points with its own.
        return r;
    }
    let batch = std::mem::take(&mut lock(&slot.queue).waiting);
    let all: Vec<(i64, f64)> = batch.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let result = write_batch(view, namespace, trial, &all).await;
    // Each caller's own count: its points that made it into the curve.
    let mut q = lock(&slot.queue);
    let mut mine = Err(ObserveError::Conflict(trial.into()));
    for (t, pts) in &batch {
        let r = match &result {
            Ok((recorded, prune)) => Ok(ObserveOutcome {
                recorded: pts
                    .iter()
                    .filter(|(s, v)| {
                        recorded
                            .iter()
                            .any(|p: &Point| p.step == *s && same(p.value, *v))
                    })
                    .count(),
                prune: *prune,
            }),
            Err(e) => Err(e.clone()),
        };
        if *t == ticket {
            mine = r;
        } else {
            q.done.insert(*t, r);
        }
    }
    mine
}

fn same(a: Option<f64>, b: f64) -> bool {
    match a {
        None => b.is_nan(),
        Some(a) => a.to_bits() == b.to_bits(),
    }
}

/// Attempts (one GET after each conflict) before giving up with [`ObserveError::Conflict`].
const ATTEMPTS: u32 = 8;

/// Appends, decides and writes once (retrying conflicts with backoff); returns the points
/// recorded and whether the trial is pruned.
async fn write_batch(
    view: &View,
    ns: &str,
    name: &str,
    points: &[(i64, f64)],
) -> Result<(Vec<Point>, bool), ObserveError> {
    let client = &view.client;
    let api: Api<Trial> = Api::namespaced(client.clone(), ns);
    let mut fresh: Option<Arc<Trial>> = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // 10, 20, 40, ... ms with jitter, so racing writers spread out.
            let base = 10u64 << (attempt - 1).min(6);
            let jitter = rand::random::<u64>() % base.max(1);
            tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        }
        let t = match fresh.take().or_else(|| view.trial(ns, name)) {
            Some(t) => t,
            None => return Err(ObserveError::NotFound(name.into())),
        };
        let phase = t.phase();
        if phase.is_finished() {
            return Err(ObserveError::Finished {
                trial: name.into(),
                phase: phase.as_str(),
                prune: phase == TrialPhase::Pruned,
            });
        }
        let mut status = t.status.clone().unwrap_or_default();
        let mut last = status
            .intermediate
            .last()
            .map(|p| p.step)
            .max(status.last_step);
        let recorded = curve::append(&mut status.intermediate, &mut last, points);
        status.last_step = last;
        if recorded.is_empty() && status.checked_step == last {
            return Ok((recorded, false));
        }
        // A report proves the trainer runs: Running in this same write, so the Trial
        // reconcile (which learns it from the Job's `ready` count, later) has nothing to write.
        if !recorded.is_empty() && matches!(status.phase, None | Some(TrialPhase::Pending)) {
            status.phase = Some(TrialPhase::Running);
            if status.start_time.is_none() {
                status.start_time = Some(Time(Timestamp::now()));
            }
        }
        let decided = decide(view, ns, &t, &recorded)?;
        let mut pruned = None;
        if let Some((d, _)) = &decided {
            status.rungs.extend(rungs_to_status(&d.record_rungs));
            if d.prune {
                mark_pruned(&mut status, d, t.metadata.generation);
                pruned = Some(d.clone());
            }
        }
        status.checked_step = last;
        // Long curves: the oldest points go to chunks before the Trial says they exist.
        let chunks_before = t.curve_chunks();
        let sealed = curve::seal(&mut status.intermediate);
        for (i, c) in sealed.iter().enumerate() {
            create_chunk(client, &t, chunks_before + i as u32, c).await?;
        }
        if !sealed.is_empty() {
            status.curve_chunks = Some(chunks_before + sealed.len() as u32);
        }
        if pruned.is_some() {
            // Said before the write: the Trial reconcile, woken by this write, must not send
            // a second DELETE for the Job this path deletes right after it.
            let job = t.status.as_ref().and_then(|s| s.job.clone());
            view.deleted_job(ns, &job.unwrap_or_else(|| name.to_string()));
        }
        let rv = t.resource_version();
        match apply_trial_status(&api, name, &status, rv.as_deref()).await {
            Ok(written) => {
                let sealed_points: Vec<Point> = sealed.into_iter().flatten().collect();
                if let Some(study) = view.study(ns, &t.spec.study) {
                    let book = view.book(&study);
                    let state = decided.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
                    lock(&book).commit(&written, &sealed_points, &state);
                    if let Some((_, state)) = &decided {
                        persist_state(view, &study, state).await;
                    }
                }
                view.wrote(written);
                if let Some(d) = pruned {
                    act_on_prune(client, ns, &t, d.reason, &d.message).await?;
                }
                let prune = status.phase == Some(TrialPhase::Pruned);
                return Ok((recorded, prune));
            }
            Err(e) if is_status(&e, 409) => {
                crate::metrics::telemetry::error("observe", "conflict");
                fresh = match api.get_opt(name).await? {
                    Some(t) => {
                        view.wrote(t.clone());
                        Some(Arc::new(t))
                    }
                    None => return Err(ObserveError::NotFound(name.into())),
                };
            }
            Err(e) if is_status(&e, 404) => return Err(ObserveError::NotFound(name.into())),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ObserveError::Conflict(name.into()))
}

/// Writes chunk `k` (AlreadyExists is success: chunk `k` always holds the same points).
async fn create_chunk(
    client: &Client,
    t: &Trial,
    k: u32,
    points: &[Point],
) -> Result<(), ObserveError> {
    let api: Api<CurveChunk> = Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
    match api
        .create(&PostParams::default(), &curve::chunk(t, k, points))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The pruner's decision for trial `t` with `points` added, and the pruner state after it;
/// `None` when its study is gone (nothing to decide against).
fn decide(
    view: &View,
    ns: &str,
    t: &Trial,
    points: &[Point],
) -> Result<Option<(Decision, crate::engine::PrunerState)>, ObserveError> {
    let Some(study) = view.study(ns, &t.spec.study) else {
        return Ok(None);
    };
    let trials = view.study_trials(ns, &t.spec.study);
    let book = view.book(&study);
    let mut b = lock(&book);
    b.sync(&trials, &|tr: &Trial, count| {
        view.sealed_points(ns, &tr.name_any(), count)
    });
    b.load_state(study.status.as_ref().and_then(|s| s.pruner_state.as_ref()));
    let spec = study.pruner();
    let (d, state) = b
        .decide(
            &study.name_any(),
            study.spec.objective.direction,
            &spec,
            t.spec.number,
            points,
        )
        .map_err(|message| ObserveError::Pruner {
            study: study.name_any(),
            message,
        })?;
    let label = if d.reason.is_empty() {
        spec.key().to_string()
    } else {
        d.reason.to_string()
    };
    telemetry()
        .prune_decisions
        .with_label_values(&[label.as_str(), if d.prune { "prune" } else { "keep" }])
        .inc();
    Ok(Some((d, state)))
}

/// Persists pruner state resolved by a decision, after the Trial write it came with (only
/// when the Study does not hold it yet). Best effort: the book keeps it, and the next
/// decision persists it again if this write is lost.
async fn persist_state(view: &View, study: &crate::crd::Study, state: &crate::engine::PrunerState) {
    let persisted = study
        .status
        .as_ref()
        .and_then(|s| s.pruner_state.clone())
        .unwrap_or_default();
    let missing = (persisted.min_resource.is_none() && state.min_resource.is_some())
        || (persisted.max_resource.is_none() && state.max_resource.is_some());
    if !missing {
        return;
    }
    let mut merged = persisted;
    merged.min_resource = merged.min_resource.or(state.min_resource);
    merged.max_resource = merged.max_resource.or(state.max_resource);
    if let Err(e) = save_pruner_state(&view.client, study, &merged).await {
        tracing::warn!(study = %study.name_any(), error = %e, "saving the pruner state failed; the next decision retries");
    }
}

/// Sets the Pruned phase, value, step and condition on a status.
pub fn mark_pruned(status: &mut TrialStatus, d: &Decision, generation: Option<i64>) {
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
        d.reason
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
