//! Rendering a trial as a Kubeflow TrainJob (`trainer.kubeflow.org/v1alpha1`): the Trainer
//! controller turns it, with its runtime, into a JobSet. The trainer gets the LOPPER_* env
//! and the `gpus` shorthand per node.

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::job::{RenderError, Substitutions, TrialExtras, gpu_resource, workload_labels};
use crate::crd::{Study, Trial};

/// The TrainJob's metadata and spec for `trial`.
pub fn render(
    study: &Study,
    trial: &Trial,
    extras: &TrialExtras,
) -> Result<(ObjectMeta, Value), RenderError> {
    let tt = &study.spec.trial_template;
    let mut raw = tt.train_job.clone().unwrap_or(Value::Null);
    Substitutions::of(study, trial)
        .apply_value(&mut raw)
        .map_err(|e| e.within("trainJob"))?;
    let obj = raw
        .as_object_mut()
        .ok_or_else(|| RenderError::template("trainJob", "must be an object"))?;
    let trainer = obj.entry("trainer").or_insert_with(|| json!({}));
    let trainer = trainer
        .as_object_mut()
        .ok_or_else(|| RenderError::template("trainJob.trainer", "must be an object"))?;
    let mut env: Vec<EnvVar> = match trainer.get("env") {
        Some(e) => serde_json::from_value(e.clone()).map_err(|e| {
            RenderError::template(
                "trainJob.trainer.env",
                format!("not a list of env vars: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    let vars: Vec<EnvVar> = crate::crd::trial_env(
        &trial.spec.study,
        trial.metadata.name.as_deref().unwrap_or_default(),
        trial.spec.number,
        &trial.spec.params,
    )
    .into_iter()
    .map(|(name, value)| EnvVar {
        name,
        value: Some(value),
        ..Default::default()
    })
    .chain(extras.env.iter().cloned())
    .collect();
    env.retain(|x| !vars.iter().any(|v| v.name == x.name));
    env.extend(vars);
    trainer.insert(
        "env".into(),
        serde_json::to_value(env).expect("env serializes"),
    );
    if let Some(g) = tt.gpus {
        let r = trainer
            .entry("resourcesPerNode")
            .or_insert_with(|| json!({}));
        let Some(r) = r.as_object_mut() else {
            return Err(RenderError::template(
                "trainJob.trainer.resourcesPerNode",
                "must be an object",
            ));
        };
        let limits = r.entry("limits").or_insert_with(|| json!({}));
        if let Some(l) = limits.as_object_mut() {
            l.insert(gpu_resource(study), Value::from(g.to_string()));
        }
    }
    if study.spec.queue_name.is_some() {
        // Kueue admits a TrainJob by unsuspending it.
        obj.insert("suspend".into(), Value::Bool(true));
    }
    let (labels, annotations) = workload_labels(study, trial);
    Ok((super::jobset::meta(trial, labels, annotations), raw))
}
