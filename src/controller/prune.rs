//! Acting on decisions: persisting the pruner state, deleting Jobs, publishing Events.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::status::{PRUNER_MANAGER, is_status};
use crate::crd::{Study, Trial};
use crate::engine::PrunerState;
use crate::workload::kinds::WorkloadKind;

/// The reporting controller named on Events.
pub const REPORTER: &str = "lopper-controller";

/// Persists the study's pruner state under its own field manager, with the Study's
/// `resourceVersion` (a Study changed since it was read answers 409: the state is then read
/// again and written only if it still lacks these values).
pub async fn save_pruner_state(
    client: &Client,
    study: &Study,
    state: &PrunerState,
) -> Result<(), kube::Error> {
    let ns = study.namespace().unwrap_or_default();
    let api: Api<Study> = Api::namespaced(client.clone(), &ns);
    let mut rv = study.resource_version();
    let mut state = state.clone();
    for _ in 0..3 {
        let body = json!({
            "apiVersion": Study::api_version(&()),
            "kind": Study::kind(&()),
            "metadata": {"name": study.name_any(), "resourceVersion": rv},
            "status": {"prunerState": state},
        });
        match api
            .patch_status(
                &study.name_any(),
                &PatchParams::apply(PRUNER_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 409) => {
                let now = api.get(&study.name_any()).await?;
                let persisted = now
                    .status
                    .as_ref()
                    .and_then(|s| s.pruner_state.clone())
                    .unwrap_or_default();
                // Values resolved once: one already stored stays.
                state.min_resource = persisted.min_resource.or(state.min_resource);
                state.max_resource = persisted.max_resource.or(state.max_resource);
                if persisted == state {
                    return Ok(());
                }
                rv = now.resource_version();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Rung values as stored in Trial status (string keys).
pub fn rungs_to_status(r: &BTreeMap<u32, f64>) -> BTreeMap<String, f64> {
    r.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Deletes a trial's workload (a Job, else the JobSet or TrainJob of that name) with
/// background propagation (its pods and GPUs go right after). A missing one is fine.
pub async fn delete_job(client: &Client, ns: &str, name: &str) -> Result<bool, kube::Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => return Ok(true),
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(e),
    }
    // The other kinds only when no Job has that name (a cluster without their CRDs answers
    // 404 too).
    for kind in [WorkloadKind::JobSet, WorkloadKind::TrainJob] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &kind.api_resource());
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => return Ok(true),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
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
