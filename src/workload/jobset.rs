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
        .ok_or_else(|| {
            RenderError::template("jobSet.replicatedJobs", "needs at least one replicated job")
        })?;
    if !rjobs
        .iter()
        .any(|r| r.get("name").and_then(Value::as_str) == Some(&primary))
    {
        return Err(RenderError::template(
            "primaryReplicatedJob",
            format!("{primary:?} names no replicated job"),
        ));
    }
    for (i, rj) in rjobs.iter_mut().enumerate() {
        let field = format!("jobSet.replicatedJobs[{i}].template.spec.template");
        let Some(slot) = rj.pointer_mut("/template/spec/template") else {
            return Err(RenderError::template(&field, "missing"));
        };
        let mut pod: PodTemplateSpec = serde_json::from_value(slot.clone())
            .map_err(|e| RenderError::template(&field, format!("not a pod template: {e}")))?;
        decorate_pod(study, trial, &mut pod, true).map_err(|e| e.within(&field))?;
        if let Some(p) = pod.spec.as_mut() {
            set_env(&mut p.containers, &extras.env);
        }
        *slot =
            serde_json::to_value(&pod).map_err(|e| RenderError::template(&field, e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{STUDY_LABEL, TRIAL_LABEL};
    use crate::workload::job::tests::study;
    use crate::workload::kinds::{self, WorkloadKind};
    use serde_json::json;

    fn jobset_study(queue: bool) -> Study {
        let mut s = study(json!({}), Some(2));
        s.spec.trial_template.spec = None;
        s.spec.trial_template.primary_replicated_job = Some("leader".into());
        s.spec.trial_template.job_set = Some(json!({"replicatedJobs": [
            {"name": "leader", "replicas": 1, "template": {"spec": {"parallelism": 2, "template": {"spec": {
                "containers": [{"name": "trainer", "image": "t:1", "args": ["--lr=${params.lr}"]}]}}}}},
            {"name": "workers", "replicas": 2, "template": {"spec": {"template": {"spec": {
                "containers": [{"name": "trainer", "image": "t:1", "args": ["--n=${trial.number}"]}]}}}}}
        ]}));
        if queue {
            s.spec.queue_name = Some("lq".into());
            s.spec.priority_class_name = Some("low".into());
        }
        s
    }

    fn trial() -> Trial {
        let mut params = crate::engine::Params::new();
        params.insert("lr".into(), crate::engine::ParamValue::Float(0.5));
        params.insert("opt".into(), crate::engine::ParamValue::Str("adam".into()));
        let mut t = Trial::new(
            "digits-7",
            crate::crd::TrialSpec {
                study: "digits".into(),
                number: 7,
                params,
                invalid: None,
            },
        );
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some("u-trial".into());
        t
    }

    #[test]
    fn renders_every_pod_and_counts_every_gpu() {
        let s = jobset_study(true);
        assert_eq!(WorkloadKind::of(&s), WorkloadKind::JobSet);
        let obj = kinds::render(&s, &trial(), &Default::default()).unwrap();
        assert_eq!(
            obj.types.as_ref().unwrap().api_version,
            "jobset.x-k8s.io/v1alpha2"
        );
        let labels = obj.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[crate::workload::kueue::QUEUE_LABEL], "lq");
        assert_eq!(
            obj.metadata.owner_references.as_ref().unwrap()[0].uid,
            "u-trial"
        );
        let spec = &obj.data["spec"];
        assert_eq!(spec["suspend"], json!(true));
        for (i, arg) in [(0, "--lr=0.5"), (1, "--n=7")] {
            let rj = &spec["replicatedJobs"][i];
            assert_eq!(rj["template"]["spec"]["backoffLimit"], json!(0));
            assert_eq!(
                rj["template"]["metadata"]["labels"][TRIAL_LABEL],
                "digits-7"
            );
            let pod = &rj["template"]["spec"]["template"];
            assert_eq!(pod["metadata"]["labels"][STUDY_LABEL], "digits");
            // The queue label stays on the JobSet: Kueue manages the pods through it.
            assert!(
                pod["metadata"]["labels"]
                    .get(crate::workload::kueue::QUEUE_LABEL)
                    .is_none()
            );
            assert_eq!(pod["spec"]["priorityClassName"], "low");
            assert_eq!(pod["spec"]["restartPolicy"], "Never");
            let c = &pod["spec"]["containers"][0];
            assert_eq!(c["args"][0], arg);
            assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "2");
            assert!(
                c["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["name"] == "LOPPER_TRIAL")
            );
        }
        // (1 × 2 + 2 × 1) pods × 2 GPUs.
        assert_eq!(kinds::gpus_per_trial(&s), 8);
        assert_eq!(kinds::metrics_job_name(&s, "digits-7"), "digits-7-leader-0");
        assert!(
            kinds::render(&jobset_study(false), &trial(), &Default::default())
                .unwrap()
                .data["spec"]
                .get("suspend")
                .is_none()
        );
    }

    #[test]
    fn errors_name_the_replicated_job() {
        let mut s = jobset_study(false);
        s.spec.trial_template.job_set.as_mut().unwrap()["replicatedJobs"][1]["template"]["spec"]
            ["template"]["spec"]["containers"][0]["args"][0] = json!("${params.nope}");
        let e = kinds::render(&s, &trial(), &Default::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "spec.trialTemplate.jobSet: unknown placeholder ${params.nope}"
        );
        let mut s = jobset_study(false);
        s.spec.trial_template.job_set.as_mut().unwrap()["replicatedJobs"][1]["template"]["spec"]
            ["template"]["spec"]["containers"] = json!([]);
        let e = kinds::render(&s, &trial(), &Default::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "spec.trialTemplate.jobSet.replicatedJobs[1].template.spec.template: the pod template has no containers"
        );
    }

    #[test]
    fn a_trainjob_gets_the_env_the_gpus_and_the_queue() {
        let mut s = jobset_study(true);
        s.spec.trial_template.job_set = None;
        s.spec.trial_template.primary_replicated_job = None;
        s.spec.trial_template.train_job = Some(json!({
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": 3, "args": ["--lr=${params.lr}"], "env": [{"name": "A", "value": "1"}]}
        }));
        let obj = kinds::render(&s, &trial(), &Default::default()).unwrap();
        assert_eq!(obj.types.as_ref().unwrap().kind, "TrainJob");
        let spec = &obj.data["spec"];
        assert_eq!(spec["suspend"], json!(true));
        assert_eq!(spec["trainer"]["args"][0], "--lr=0.5");
        assert_eq!(
            spec["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"],
            "2"
        );
        let env = spec["trainer"]["env"].as_array().unwrap();
        assert_eq!(env[0]["name"], "A");
        assert!(
            env.iter()
                .any(|e| e["name"] == "LOPPER_TRIAL_NUMBER" && e["value"] == "7")
        );
        assert_eq!(kinds::gpus_per_trial(&s), 6);
        assert_eq!(kinds::metrics_job_name(&s, "digits-7"), "digits-7-node-0");
    }
}
