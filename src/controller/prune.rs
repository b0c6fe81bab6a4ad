//! The pruning decision for one trial (the same function for the metric sources, `observe`
//! and the Trial reconciler), and acting on it.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::status::{PRUNER_MANAGER, is_status};
use super::telemetry::telemetry;
use crate::crd::{STUDY_LABEL, Study, Trial};
use crate::engine::pruners::{self, Decision};
use crate::engine::{PrunerState, StudyView, TrialRecord};

/// The reporting controller named on Events.
pub const REPORTER: &str = "lopper-controller";

/// Asks the study's pruner about `trial` (its record as it will be stored), seeing every
/// trial of the study. `state` is the study's persisted pruner state, updated in place.
pub fn decide(
    study: &Study,
    trials: &[TrialRecord],
    trial: &TrialRecord,
    state: &mut PrunerState,
) -> Result<Decision, String> {
    let spec = study.pruner();
    let pruner = pruners::build(&spec).map_err(|e| e.to_string())?;
    let mut all: Vec<TrialRecord> = trials
        .iter()
        .filter(|t| t.number != trial.number)
        .cloned()
        .collect();
    all.push(trial.clone());
    all.sort_by_key(|t| t.number);
    let name = study.name_any();
    let view = StudyView {
        name: &name,
        direction: study.spec.objective.direction,
        trials: &all,
    };
    let d = pruner.prune(&view, trial, state);
    let label = if d.reason.is_empty() {
        spec.key().to_string()
    } else {
        d.reason.clone()
    };
    telemetry()
        .prune_decisions
        .with_label_values(&[label.as_str(), if d.prune { "prune" } else { "keep" }])
        .inc();
    Ok(d)
}

/// Every trial of `study` (API list, not a cache) as engine records.
pub async fn study_records(
    client: &Client,
    ns: &str,
    study: &str,
) -> Result<Vec<Trial>, kube::Error> {
    let api: Api<Trial> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("{STUDY_LABEL}={study}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|t| t.spec.study == study)
        .collect())
}

/// Persists the study's pruner state (its own field manager; only when it changed).
pub async fn save_pruner_state(
    client: &Client,
    study: &Study,
    state: &PrunerState,
) -> Result<(), kube::Error> {
    let ns = study.namespace().unwrap_or_default();
    let api: Api<Study> = Api::namespaced(client.clone(), &ns);
    let body = json!({
        "apiVersion": Study::api_version(&()),
        "kind": Study::kind(&()),
        "metadata": {"name": study.name_any()},
        "status": {"prunerState": state},
    });
    api.patch_status(
        &study.name_any(),
        &PatchParams::apply(PRUNER_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Rung values as stored in Trial status (string keys).
pub fn rungs_to_status(r: &BTreeMap<u32, f64>) -> BTreeMap<String, f64> {
    r.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Deletes a trial's Job with background propagation (its pods and GPUs go right after).
/// A missing Job is fine.
pub async fn delete_job(client: &Client, ns: &str, name: &str) -> Result<bool, kube::Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Publishes an Event about `trial` (best effort: a failed Event never fails a decision).
pub async fn trial_event(
    client: &Client,
    trial: &Trial,
    warning: bool,
    reason: &str,
    note: String,
) {
    publish_event(client, trial.object_ref(&()), warning, reason, note).await
}

/// Publishes an Event about any object (best effort).
pub async fn publish_event(
    client: &Client,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
) {
    let reporter = match std::env::var("POD_NAME") {
        Ok(pod) => Reporter {
            controller: REPORTER.into(),
            instance: Some(pod),
        },
        Err(_) => Reporter::from(REPORTER),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.to_string(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &reference).await {
        tracing::debug!(error = %e, "publishing event failed");
    }
}
