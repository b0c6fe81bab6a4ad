//! Rendering a trial as a JobSet (`jobset.x-k8s.io/v1alpha2`): a multi-node trial, one Job
//! per replica of each replicated job. Every pod is decorated as a Job trial's pod is.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde_json::Value;

use super::job::{
    RenderError, Substitutions, TrialExtras, controller_ref, decorate_pod, set_env, workload_labels,
};
use crate::crd::{Study, Trial};

/// The replicated job whose first Job's pod log carries the metrics (default: the first).
pub fn primary_name(study: &Study) -> String {
    let tt = &study.spec.trial_template;
    tt.primary_replicated_job.clone().unwrap_or_else(|| {
        tt.job_set
            .as_ref()
            .and_then(|j| j.pointer("/replicatedJobs/0/name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    })
}

fn err(field: &str, msg: impl Into<String>) -> RenderError {
    RenderError::Template {
        field: field.to_string(),
        msg: msg.into(),
    }
}

/// The JobSet's metadata and spec for `trial`.
pub fn render(
    study: &Study,
    trial: &Trial,
    extras: &TrialExtras,
) -> Result<(ObjectMeta, Value), RenderError> {
    let tt = &study.spec.trial_template;
    let mut raw = tt.job_set.clone().unwrap_or(Value::Null);
    Substitutions::of(study, trial)
        .apply_value(&mut raw)
        .map_err(|e| e.within("jobSet"))?;
    let primary = primary_name(study);
    let (labels, annotations) = workload_labels(study, trial);
    let rjobs = raw
        .get_mut("replicatedJobs")
        .and_then(Value::as_array_mut)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| err("jobSet.replicatedJobs", "needs at least one replicated job"))?;
    if !rjobs
        .iter()
        .any(|r| r.get("name").and_then(Value::as_str) == Some(&primary))
    {
        return Err(err(
            "primaryReplicatedJob",
            format!("{primary:?} names no replicated job"),
        ));
    }
    for (i, rj) in rjobs.iter_mut().enumerate() {
        let field = format!("jobSet.replicatedJobs[{i}].template.spec.template");
        let Some(slot) = rj.pointer_mut("/template/spec/template") else {
            return Err(err(&field, "missing"));
        };
        let mut pod: PodTemplateSpec = serde_json::from_value(slot.clone())
            .map_err(|e| err(&field, format!("not a pod template: {e}")))?;
        decorate_pod(study, trial, &mut pod, true).map_err(|e| e.within(&field))?;
        if let Some(p) = pod.spec.as_mut() {
            set_env(&mut p.containers, &extras.env);
        }
        *slot = serde_json::to_value(&pod).map_err(|e| err(&field, e.to_string()))?;
        let job_spec = rj
            .pointer_mut("/template/spec")
            .and_then(Value::as_object_mut);
        if let Some(js) = job_spec {
            // A trial runs once: retries would burn GPU time on a configuration already judged.
            js.entry("backoffLimit").or_insert(Value::from(0));
        }
        // The child Jobs carry the trial's labels too (kubectl get jobs -l lopper.dev/trial=…).
        let meta = rj
            .as_object_mut()
            .and_then(|o| o.get_mut("template"))
            .and_then(Value::as_object_mut)
            .map(|t| {
                t.entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()))
            });
        if let Some(Value::Object(m)) = meta {
            let l = m
                .entry("labels")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(l) = l {
                for (k, v) in &labels {
                    if k != super::kueue::QUEUE_LABEL {
                        l.insert(k.clone(), Value::from(v.clone()));
                    }
                }
            }
        }
    }
    if study.spec.queue_name.is_some()
        && let Some(o) = raw.as_object_mut()
    {
        // Kueue admits a JobSet by unsuspending it.
        o.insert("suspend".into(), Value::Bool(true));
    }
    Ok((meta(trial, labels, annotations), raw))
}

pub(crate) fn meta(
    trial: &Trial,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(trial.name_any()),
        namespace: trial.namespace(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: Some(vec![controller_ref(trial)]),
        ..Default::default()
    }
}
