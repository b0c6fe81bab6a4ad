//! The kinds of workload a trial runs as: a batch/v1 Job (`trialTemplate.spec`), a JobSet
//! (`trialTemplate.jobSet`) or a Kubeflow TrainJob (`trialTemplate.trainJob`). Pure: which
//! kind, its API resource, rendering, GPU accounting and where its metrics log is.

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

use super::job::{RenderError, TrialExtras, pod_gpus, render_job};
use crate::crd::{Study, Trial};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Job,
    JobSet,
    TrainJob,
}

impl WorkloadKind {
    /// The kind `study`'s template describes (the CRD admits exactly one).
    pub fn of(study: &Study) -> WorkloadKind {
        let tt = &study.spec.trial_template;
        if tt.job_set.is_some() {
            WorkloadKind::JobSet
        } else if tt.train_job.is_some() {
            WorkloadKind::TrainJob
        } else {
            WorkloadKind::Job
        }
    }

    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = match self {
            WorkloadKind::Job => ("batch", "v1", "Job", "jobs"),
            WorkloadKind::JobSet => ("jobset.x-k8s.io", "v1alpha2", "JobSet", "jobsets"),
            WorkloadKind::TrainJob => ("trainer.kubeflow.org", "v1alpha1", "TrainJob", "trainjobs"),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    }

    /// The `trialTemplate` field holding this kind's spec.
    pub fn field(self) -> &'static str {
        match self {
            WorkloadKind::Job => "spec",
            WorkloadKind::JobSet => "jobSet",
            WorkloadKind::TrainJob => "trainJob",
        }
    }
}

/// Renders the workload of `trial` as the API object to create.
pub fn render(
    study: &Study,
    trial: &Trial,
    extras: &TrialExtras,
) -> Result<DynamicObject, RenderError> {
    let kind = WorkloadKind::of(study);
    let (metadata, spec) = match kind {
        WorkloadKind::Job => {
            let job = render_job(study, trial, extras)?;
            let spec = serde_json::to_value(&job.spec)
                .map_err(|e| RenderError::InvalidJobSpec(e.to_string()))?;
            (job.metadata, spec)
        }
        WorkloadKind::JobSet => super::jobset::render(study, trial, extras)?,
        WorkloadKind::TrainJob => super::trainjob::render(study, trial, extras)?,
    };
    let mut obj = DynamicObject::new(&trial.name_any(), &kind.api_resource());
    obj.metadata = metadata;
    obj.data = serde_json::json!({ "spec": spec });
    Ok(obj)
}

/// The GPUs one trial holds while it runs (see [`super::job::gpus_per_trial`]).
pub fn gpus_per_trial(study: &Study) -> u32 {
    let tt = &study.spec.trial_template;
    let int = |v: Option<&Value>| v.and_then(Value::as_u64).map(|n| n as u32).unwrap_or(1);
    match WorkloadKind::of(study) {
        WorkloadKind::Job => {
            let spec = tt.spec.as_ref();
            let per_pod = pod_gpus(study, spec.and_then(|s| s.pointer("/template/spec")), true);
            per_pod * int(spec.and_then(|s| s.get("parallelism")))
        }
        WorkloadKind::JobSet => tt
            .job_set
            .as_ref()
            .and_then(|j| j.get("replicatedJobs"))
            .and_then(Value::as_array)
            .map(|rjs| {
                rjs.iter()
                    .map(|rj| {
                        let pods =
                            int(rj.get("replicas")) * int(rj.pointer("/template/spec/parallelism"));
                        pods * pod_gpus(study, rj.pointer("/template/spec/template/spec"), true)
                    })
                    .sum()
            })
            .unwrap_or(0),
        WorkloadKind::TrainJob => {
            let trainer = tt.train_job.as_ref().and_then(|t| t.get("trainer"));
            let nodes = int(trainer.and_then(|t| t.get("numNodes")));
            let per_node = match tt.gpus {
                Some(g) => g,
                None => {
                    let res = super::job::gpu_resource(study);
                    let r = trainer.and_then(|t| t.get("resourcesPerNode"));
                    r.and_then(|r| r.get("limits").and_then(|l| l.get(&res)))
                        .or_else(|| r.and_then(|r| r.get("requests").and_then(|l| l.get(&res))))
                        .and_then(|q| match q {
                            Value::Number(n) => n.as_u64().map(|n| n as u32),
                            Value::String(s) => s.parse().ok(),
                            _ => None,
                        })
                        .unwrap_or(0)
                }
            };
            nodes * per_node
        }
    }
}

/// The Job whose pod log carries a trial's metrics: the trial's Job; for a JobSet the first
/// Job of the primary replicated job (`<jobset>-<replicatedJob>-0`); for a TrainJob the first
/// Job of the runtime's `node` replicated job, which runs the trainer.
pub fn metrics_job_name(study: &Study, workload: &str) -> String {
    match WorkloadKind::of(study) {
        WorkloadKind::Job => workload.to_string(),
        WorkloadKind::JobSet => format!("{workload}-{}-0", super::jobset::primary_name(study)),
        WorkloadKind::TrainJob => format!("{workload}-node-0"),
    }
}
