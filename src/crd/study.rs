//! The `Study` custom resource: a search space, a sampler, a pruner and a Job template.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::engine_api::{MetricsSpec, ParamSpec, PrunerSpec, SamplerSpec};
use crate::engine::budget::{Budget, BudgetStatus};
use crate::engine::{Direction, Params, PrunerState};

/// `spec` of a Study.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "lopper.dev",
    version = "v1alpha1",
    kind = "Study",
    plural = "studies",
    namespaced,
    shortname = "st",
    category = "lopper",
    status = "StudyStatus",
    doc = "A hyperparameter-tuning study: trials sampled from a search space, run as Jobs, pruned early.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Best","type":"number","jsonPath":".status.best.value"}"#,
    printcolumn = r#"{"name":"Completed/Max","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.trials.running"}"#,
    printcolumn = r#"{"name":"Queued","type":"integer","jsonPath":".status.trials.queued","priority":1}"#,
    printcolumn = r#"{"name":"Pruned","type":"integer","jsonPath":".status.trials.pruned"}"#,
    printcolumn = r#"{"name":"Budget","type":"string","jsonPath":".status.budget.summary"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub struct StudySpec {
    /// What is optimised.
    pub objective: Objective,
    /// The search space (the engine's parameter specs).
    #[schemars(schema_with = "super::engine_api::parameters_schema")]
    pub parameters: Vec<ParamSpec>,
    /// Exactly one sampler; default `tpe` with default settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::engine_api::sampler_schema")]
    pub sampler: Option<SamplerSpec>,
    /// Exactly one pruner; default `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::engine_api::pruner_schema")]
    pub pruner: Option<PrunerSpec>,
    /// How many trials the study runs in total (optional when `budget` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_trials: Option<u32>,
    /// Compute the study may spend: reported `steps` and/or `gpuHours` over all trials.
    /// Once spent no trial is created; `onSpent` says whether running trials finish or stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// How many trials run at once (default 1).
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1))]
    pub parallelism: u32,
    /// The study fails once more trials than this have failed (default: never fails early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_failed_trials: Option<u32>,
    /// Where intermediate metrics come from; default `logs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,
    /// Earlier studies in the namespace whose trials feed the sampler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<WarmStart>,
    /// How each trial runs: a batch/v1 Job, a JobSet or a TrainJob template with `${...}`
    /// placeholders.
    pub trial_template: TrialTemplate,
    /// A Kueue LocalQueue: each trial's workload is labelled `kueue.x-k8s.io/queue-name` and
    /// created suspended, and waits for admission in phase `Queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub queue_name: Option<String>,
    /// A PriorityClass for every trial pod (Kueue orders and preempts workloads by it);
    /// a `priorityClassName` inside the template wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// What a preempted trial (its workload evicted and suspended again) does: `Requeue`
    /// (default: it waits for admission again, `Queued`) or `Fail` (reason `Preempted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_preemption: Option<OnPreemption>,
    /// Set (never by the API) when the stored spec could not be read into this type: the
    /// reader's error, with the path of the offending field. Such a spec holds placeholders
    /// for everything else; the operator only marks the Study `InvalidSpec`.
    #[serde(skip)]
    #[schemars(skip)]
    pub invalid: Option<String>,
}

// One Study whose spec the API accepted but this type cannot read (untyped
// `x-kubernetes-preserve-unknown-fields` values CEL cannot check) must not fail the list and
// watch of every Study: reading never fails, it yields a spec marked `invalid` instead.
impl<'de> Deserialize<'de> for StudySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(super::read_spec(&value, |d| StudySpec::deserialize(d))
            .unwrap_or_else(|msg| StudySpec::unreadable(&value, msg)))
    }
}

impl Serialize for StudySpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StudySpec::serialize(self, s)
    }
}

impl StudySpec {
    /// The placeholder spec of an unreadable one (keeps the objective when it reads).
    fn unreadable(value: &serde_json::Value, msg: String) -> StudySpec {
        let objective = value
            .get("objective")
            .and_then(|o| serde_json::from_value(o.clone()).ok())
            .unwrap_or(Objective {
                metric: String::new(),
                direction: Direction::default(),
                goal: None,
            });
        StudySpec {
            objective,
            parameters: Vec::new(),
            sampler: None,
            pruner: None,
            max_trials: Some(1),
            budget: None,
            parallelism: 1,
            max_failed_trials: None,
            metrics: None,
            warm_start: None,
            trial_template: TrialTemplate {
                primary_container: None,
                primary_replicated_job: None,
                gpus: None,
                gpu_resource: None,
                metadata: None,
                spec: None,
                job_set: None,
                train_job: None,
            },
            queue_name: None,
            priority_class_name: None,
            on_preemption: None,
            invalid: Some(msg),
        }
    }
}

fn default_parallelism() -> u32 {
    1
}

/// `spec.objective`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// The metric name the trainer reports (e.g. `val_loss`).
    #[schemars(length(min = 1))]
    pub metric: String,
    /// `minimize` (default) or `maximize`.
    #[serde(default)]
    pub direction: Direction,
    /// Optional: the study succeeds once a completed trial reaches this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<f64>,
}

/// `spec.warmStart`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmStart {
    /// Names of earlier Studies in the same namespace.
    #[schemars(length(min = 1))]
    pub from_studies: Vec<String>,
}

/// `spec.onPreemption`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnPreemption {
    /// The trial goes back to `Queued` and runs again once readmitted; its earlier run time
    /// still counts as GPU time.
    #[default]
    Requeue,
    /// The trial fails with reason `Preempted` and its workload is deleted.
    Fail,
}

/// `spec.trialTemplate`: exactly one of `spec` (a batch/v1 JobSpec), `jobSet`, `trainJob`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialTemplate {
    /// The container that gets the GPUs, the LOPPER_* env and whose log is read (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_container: Option<String>,
    /// For a `jobSet`: the replicated job whose containers get the `gpus` shorthand and whose
    /// first Job's pod log carries the metrics (default: the first replicated job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub primary_replicated_job: Option<String>,
    /// Shorthand: sets this many `gpuResource` as limit on the primary container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1024))]
    pub gpus: Option<u32>,
    /// The extended resource name of a GPU (default `nvidia.com/gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_resource: Option<String>,
    /// Labels and annotations copied onto the Job and its pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// A batch/v1 JobSpec. String values may hold `${params.NAME}`, `${trial.name}`,
    /// `${trial.number}` and `${study.name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::job_spec_schema")]
    pub spec: Option<serde_json::Value>,
    /// A JobSet (`jobset.x-k8s.io/v1alpha2`) spec: multi-node trials, one Job per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::jobset_spec_schema")]
    pub job_set: Option<serde_json::Value>,
    /// A Kubeflow TrainJob (`trainer.kubeflow.org/v1alpha1`) spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::trainjob_spec_schema")]
    pub train_job: Option<serde_json::Value>,
}

/// `spec.trialTemplate.metadata`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Lifecycle of a Study.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StudyPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl StudyPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            StudyPhase::Pending => "Pending",
            StudyPhase::Running => "Running",
            StudyPhase::Succeeded => "Succeeded",
            StudyPhase::Failed => "Failed",
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(self, StudyPhase::Succeeded | StudyPhase::Failed)
    }
}

/// `status` of a Study. Everything in it is derived from the Study's Trials except
/// `prunerState`, which holds what a pruner resolves once (written by its own field manager).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<StudyPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready / Running / Succeeded / Failed (and MetricsUnavailable from metric sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<TrialCounts>,
    /// Spent and left of `spec.budget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStatus>,
    /// `completed/maxTrials` (`completed/-` without maxTrials), for `kubectl get studies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestTrial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_seconds: Option<GpuSeconds>,
    /// Values the pruner resolved once (successive halving's `auto` min resource, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruner_state: Option<PrunerState>,
}

/// `status.trials`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialCounts {
    pub created: u32,
    /// Queued, Pending or Running (what `parallelism` bounds).
    pub running: u32,
    /// Of `running`: waiting for admission by Kueue.
    #[serde(default)]
    pub queued: u32,
    pub completed: u32,
    pub pruned: u32,
    pub failed: u32,
}

/// `status.best`: the best completed trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestTrial {
    pub trial: String,
    pub number: u64,
    pub value: f64,
    #[schemars(schema_with = "super::schema::params_schema")]
    pub params: Params,
}

/// `status.gpuSeconds`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuSeconds {
    /// GPU-seconds used by all trials so far (running trials up to now).
    pub used: f64,
    /// Estimated full-length GPU time of pruned trials minus what they used.
    pub saved_by_pruning: f64,
}

impl Study {
    /// The effective sampler (default: TPE with default settings).
    pub fn sampler(&self) -> SamplerSpec {
        self.spec.sampler.clone().unwrap_or_default()
    }
    /// The effective pruner (default: none). The `asha` planner plans for the study's
    /// `budget.steps` and `parallelism` unless its spec names its own.
    pub fn pruner(&self) -> PrunerSpec {
        match self.spec.pruner.clone().unwrap_or(PrunerSpec::Nop) {
            PrunerSpec::Asha(mut a) => {
                a.budget_steps = a.budget_steps.or(self
                    .spec
                    .budget
                    .and_then(|b| b.steps)
                    .and_then(|s| i64::try_from(s).ok()));
                a.parallelism = a.parallelism.or(Some(i64::from(self.spec.parallelism)));
                PrunerSpec::Asha(a)
            }
            p => p,
        }
    }
    /// The effective metric source (default: logs).
    pub fn metrics(&self) -> MetricsSpec {
        self.spec.metrics.clone().unwrap_or_default()
    }
}
