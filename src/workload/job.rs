//! Rendering a Trial's Job from the Study's `trialTemplate` (pure, no I/O).
//!
//! Placeholders `${params.NAME}`, `${trial.name}`, `${trial.number}` and `${study.name}` are
//! substituted in every string of the template's JobSpec (a parameter that is inactive in this
//! trial renders as the empty string). The primary container gets the GPU limit; every
//! container gets `LOPPER_STUDY`, `LOPPER_TRIAL`, `LOPPER_TRIAL_NUMBER`, `LOPPER_PARAMS` (JSON)
//! and one `LOPPER_PARAM_<NAME>` per active parameter.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::crd::{NUMBER_LABEL, STUDY_LABEL, Study, TRIAL_LABEL, Trial};

/// The default extended resource name of a GPU.
pub const DEFAULT_GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Why a template could not be rendered (the Trial fails with this message).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    #[error("spec.trialTemplate.spec: unknown placeholder ${{{0}}}")]
    UnknownPlaceholder(String),
    #[error("spec.trialTemplate.spec: unterminated placeholder in {0:?}")]
    Unterminated(String),
    #[error("spec.trialTemplate.spec is not a valid batch/v1 JobSpec: {0}")]
    InvalidJobSpec(String),
    #[error("spec.trialTemplate.spec.template.spec has no containers")]
    NoContainers,
    #[error("spec.trialTemplate.primaryContainer {0:?} names no container")]
    NoPrimary(String),
    #[error("spec.trialTemplate.spec: no room for the metrics sidecar: {0}")]
    Sidecar(String),
    /// A problem in a `jobSet` or `trainJob` template (`field` names where).
    #[error("spec.trialTemplate.{field}: {msg}")]
    Template { field: String, msg: String },
}

impl RenderError {
    /// A problem at `field` of a `jobSet` or `trainJob` template.
    pub fn template(field: &str, msg: impl Into<String>) -> RenderError {
        RenderError::Template {
            field: field.to_string(),
            msg: msg.into(),
        }
    }

    /// The same problem, said of `field` (e.g. `jobSet.replicatedJobs[1]`) rather than of a
    /// Job template.
    pub fn within(self, field: &str) -> RenderError {
        let msg = match self {
            RenderError::UnknownPlaceholder(k) => format!("unknown placeholder ${{{k}}}"),
            RenderError::Unterminated(s) => format!("unterminated placeholder in {s:?}"),
            RenderError::InvalidJobSpec(m) => format!("not valid: {m}"),
            RenderError::NoContainers => "the pod template has no containers".into(),
            RenderError::NoPrimary(n) => format!("primaryContainer {n:?} names no container"),
            RenderError::Sidecar(m) => format!("no room for the metrics sidecar: {m}"),
            RenderError::Template { field: f, msg } => {
                return RenderError::Template { field: f, msg };
            }
        };
        RenderError::Template {
            field: field.to_string(),
            msg,
        }
    }
}

/// What the operator adds to a trial's Job beyond the template.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrialExtras {
    /// Variables for every container (e.g. a metric source's `LOPPER_TOKEN`), after the
    /// built-in ones.
    pub env: Vec<EnvVar>,
    /// The image of the metrics sidecar (the operator's own) for `file` and `tensorboard`
    /// studies; none renders no sidecar (`lopper run` follows the file itself).
    pub sidecar_image: Option<String>,
}

/// The values placeholders can take for one trial.
pub struct Substitutions<'a> {
    pub study: &'a str,
    pub trial: &'a str,
    pub number: u64,
    pub params: &'a crate::engine::Params,
    /// Every parameter name of the space (inactive ones render empty).
    pub known: Vec<&'a str>,
}

impl<'a> Substitutions<'a> {
    /// The substitutions of `trial` of `study`.
    pub fn of(study: &'a Study, trial: &'a Trial) -> Substitutions<'a> {
        Substitutions {
            study: &trial.spec.study,
            trial: trial.meta().name.as_deref().unwrap_or_default(),
            number: trial.spec.number,
            params: &trial.spec.params,
            known: study
                .spec
                .parameters
                .iter()
                .map(|p| p.name.as_str())
                .collect(),
        }
    }

    fn lookup(&self, key: &str) -> Option<String> {
        match key {
            "study.name" => Some(self.study.to_string()),
            "trial.name" => Some(self.trial.to_string()),
            "trial.number" => Some(self.number.to_string()),
            _ => {
                let name = key.strip_prefix("params.")?;
                match self.params.get(name) {
                    Some(v) => Some(v.to_string()),
                    None if self.known.contains(&name) => Some(String::new()),
                    None => None,
                }
            }
        }
    }

    /// Substitutes every `${...}` in `s`; `$${` escapes a literal `${`.
    pub fn apply(&self, s: &str) -> Result<String, RenderError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            if i > 0 && rest[..i].ends_with('$') {
                out.push_str(&rest[..i - 1]);
                out.push_str("${");
                rest = &rest[i + 2..];
                continue;
            }
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return Err(RenderError::Unterminated(s.to_string()));
            };
            let key = after[..end].trim();
            let v = self
                .lookup(key)
                .ok_or_else(|| RenderError::UnknownPlaceholder(key.to_string()))?;
            out.push_str(&v);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Substitutes placeholders in every string of `v`.
    pub fn apply_value(&self, v: &mut Value) -> Result<(), RenderError> {
        match v {
            Value::String(s) if s.contains("${") => {
                *s = self.apply(s)?;
            }
            Value::Array(a) => {
                for x in a {
                    self.apply_value(x)?;
                }
            }
            Value::Object(o) => {
                for x in o.values_mut() {
                    self.apply_value(x)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

/// The owner reference making `owner` the controller of a child.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Renders the Job of `trial`. `extras.env` (e.g. a metric source's `LOPPER_TOKEN`) is added
/// to every container after the built-in variables; with `extras.sidecar_image`, a `file` or
/// `tensorboard` study's pod gets the metrics sidecar ([`super::sidecar`]).
pub fn render_job(study: &Study, trial: &Trial, extras: &TrialExtras) -> Result<Job, RenderError> {
    let tt = &study.spec.trial_template;
    let subs = Substitutions::of(study, trial);
    let mut raw = tt.spec.clone().unwrap_or(Value::Null);
    subs.apply_value(&mut raw)?;
    let mut spec: JobSpec =
        serde_json::from_value(raw).map_err(|e| RenderError::InvalidJobSpec(e.to_string()))?;
    let (labels, annotations) = workload_labels(study, trial);
    decorate_pod(study, trial, &mut spec.template, true)?;
    add_extra_env(&mut spec.template, extras);
    if let Some(image) = &extras.sidecar_image
        && let Some(pod) = spec.template.spec.as_mut()
    {
        let primary = primary_index(study, &pod.containers)?;
        let vars = pod_env(trial, extras);
        super::sidecar::add(pod, primary, &study.metrics(), image, &vars)?;
    }
    // A trial runs once: retries would burn GPU time on a configuration already judged.
    spec.backoff_limit.get_or_insert(0);
    if study.spec.queue_name.is_some() {
        // Kueue admits a Job by unsuspending it; created running, it would start unadmitted.
        spec.suspend = Some(true);
    }

    Ok(Job {
        metadata: ObjectMeta {
            name: Some(trial.name_any()),
            namespace: trial.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![controller_ref(trial)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// The labels and annotations of a trial's workload object: the template's, ours, and
/// Kueue's queue name.
pub fn workload_labels(
    study: &Study,
    trial: &Trial,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    if let Some(m) = &study.spec.trial_template.metadata {
        labels.extend(m.labels.clone());
        annotations.extend(m.annotations.clone());
    }
    labels.extend(our_labels(trial));
    if let Some(q) = &study.spec.queue_name {
        labels.insert(super::kueue::QUEUE_LABEL.into(), q.clone());
    }
    (labels, annotations)
}

fn our_labels(trial: &Trial) -> [(String, String); 3] {
    [
        (STUDY_LABEL.into(), trial.spec.study.clone()),
        (TRIAL_LABEL.into(), trial.name_any()),
        (NUMBER_LABEL.into(), trial.spec.number.to_string()),
    ]
}

/// The built-in LOPPER_* variables of a trial's containers, then `extras.env`.
fn pod_env(trial: &Trial, extras: &TrialExtras) -> Vec<EnvVar> {
    let mut vars: Vec<EnvVar> = crate::crd::trial_env(
        &trial.spec.study,
        &trial.name_any(),
        trial.spec.number,
        &trial.spec.params,
    )
    .into_iter()
    .map(|(k, v)| env(&k, v))
    .collect();
    vars.extend(extras.env.iter().cloned());
    vars
}

/// Sets `vars` on every container, replacing same-named ones from the template.
pub(crate) fn set_env(containers: &mut [Container], vars: &[EnvVar]) {
    for c in containers {
        let e = c.env.get_or_insert_with(Vec::new);
        e.retain(|x| !vars.iter().any(|v| v.name == x.name));
        e.extend(vars.iter().cloned());
    }
}

fn add_extra_env(template: &mut PodTemplateSpec, extras: &TrialExtras) {
    if let Some(pod) = template.spec.as_mut() {
        set_env(&mut pod.containers, &extras.env);
    }
}

/// What every trial pod gets, whatever the workload kind: the template's and our labels
/// (ours win: selectors and the log follower rely on them), annotations, `restartPolicy:
/// Never`, the built-in env, the study's priority class, and, with `gpus`, the GPU shorthand
/// on the primary container. Returns the pod spec.
pub(crate) fn decorate_pod<'a>(
    study: &Study,
    trial: &Trial,
    template: &'a mut PodTemplateSpec,
    gpus: bool,
) -> Result<&'a mut PodSpec, RenderError> {
    let tt = &study.spec.trial_template;
    let (labels, annotations) = workload_labels(study, trial);
    let pod_meta = template.metadata.get_or_insert_with(Default::default);
    let pl = pod_meta.labels.get_or_insert_with(Default::default);
    for (k, v) in &labels {
        // The queue label belongs on the workload only: on a pod Kueue would manage it alone.
        if k != super::kueue::QUEUE_LABEL {
            pl.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    for (k, v) in our_labels(trial) {
        pl.insert(k, v);
    }
    if !annotations.is_empty() {
        let pa = pod_meta.annotations.get_or_insert_with(Default::default);
        for (k, v) in &annotations {
            pa.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let pod = template.spec.as_mut().ok_or(RenderError::NoContainers)?;
    if pod.containers.is_empty() {
        return Err(RenderError::NoContainers);
    }
    pod.restart_policy
        .get_or_insert_with(|| "Never".to_string());
    if pod.priority_class_name.is_none() {
        pod.priority_class_name = study.spec.priority_class_name.clone();
    }
    let primary = primary_index(study, &pod.containers)?;
    set_env(
        &mut pod.containers,
        &pod_env(trial, &TrialExtras::default()),
    );
    if gpus && let Some(gpus) = tt.gpus {
        set_gpu_limit(study, &mut pod.containers[primary], gpus);
    }
    Ok(pod)
}

/// Puts `gpus` GPUs as limit (and request, when the template requests them) on `c`.
pub(crate) fn set_gpu_limit(study: &Study, c: &mut Container, gpus: u32) {
    let res = gpu_resource(study);
    let r = c.resources.get_or_insert_with(Default::default);
    let limits = r.limits.get_or_insert_with(Default::default);
    limits.insert(res.clone(), Quantity(gpus.to_string()));
    if let Some(req) = r.requests.as_mut()
        && req.contains_key(&res)
    {
        req.insert(res, Quantity(gpus.to_string()));
    }
}

/// The study's GPU resource name.
pub fn gpu_resource(study: &Study) -> String {
    study
        .spec
        .trial_template
        .gpu_resource
        .clone()
        .unwrap_or_else(|| DEFAULT_GPU_RESOURCE.to_string())
}

/// The position of the primary container among `containers` (`primaryContainer`, else the
/// first).
pub fn primary_index(study: &Study, containers: &[Container]) -> Result<usize, RenderError> {
    match &study.spec.trial_template.primary_container {
        Some(n) => containers
            .iter()
            .position(|c| &c.name == n)
            .ok_or_else(|| RenderError::NoPrimary(n.clone())),
        None if containers.is_empty() => Err(RenderError::NoContainers),
        None => Ok(0),
    }
}

/// The GPUs one trial of `study` holds while it runs: every pod's GPU requests (limits), for
/// a Job times its parallelism, for a JobSet summed over replicated jobs (replicas ×
/// parallelism), for a TrainJob numNodes × resourcesPerNode.
pub fn gpus_per_trial(study: &Study) -> u32 {
    super::kinds::gpus_per_trial(study)
}

/// The GPUs one pod of a pod template (JSON) requests: its containers' limits (else
/// requests), with the `gpus` shorthand on the primary container when `shorthand`.
pub(crate) fn pod_gpus(study: &Study, pod_spec: Option<&Value>, shorthand: bool) -> u32 {
    let tt = &study.spec.trial_template;
    let res = gpu_resource(study);
    let Some(containers) = pod_spec
        .and_then(|p| p.get("containers"))
        .and_then(|c| c.as_array())
    else {
        return 0;
    };
    let primary = tt
        .primary_container
        .as_ref()
        .and_then(|n| {
            containers
                .iter()
                .position(|c| c.get("name").and_then(|x| x.as_str()) == Some(n))
        })
        .unwrap_or(0);
    let quantity = |q: &Value| match q {
        Value::Number(n) => n.as_u64().map(|n| n as u32),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    containers
        .iter()
        .enumerate()
        .map(|(i, c)| match tt.gpus {
            Some(g) if shorthand && i == primary => g,
            _ => c
                .pointer("/resources/limits")
                .and_then(|l| l.get(&res))
                .or_else(|| c.pointer("/resources/requests").and_then(|l| l.get(&res)))
                .and_then(quantity)
                .unwrap_or(0),
        })
        .sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::{StudySpec, TrialSpec, param_env_name};
    use crate::engine::ParamValue;

    pub(crate) fn study(template: Value, gpus: Option<u32>) -> Study {
        let spec: StudySpec = serde_json::from_value(serde_json::json!({
            "objective": {"metric": "val_loss"},
            "parameters": [
                {"name": "lr", "float": {"low": 0.001, "high": 0.1}},
                {"name": "opt", "categorical": {"choices": ["adam", "sgd"]}},
                {"name": "momentum", "float": {"low": 0.0, "high": 0.9}, "when": {"opt": ["sgd"]}}
            ],
            "maxTrials": 4,
            "trialTemplate": {"gpus": gpus, "metadata": {"labels": {"team": "ml"}}, "spec": template}
        }))
        .unwrap();
        let mut s = Study::new("digits", spec);
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("u-study".into());
        s
    }

    fn trial() -> Trial {
        let mut params = crate::engine::Params::new();
        params.insert("lr".into(), ParamValue::Float(0.012));
        params.insert("opt".into(), ParamValue::Str("adam".into()));
        let mut t = Trial::new(
            "digits-7",
            TrialSpec {
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

    fn template() -> Value {
        serde_json::json!({
            "template": {"spec": {"containers": [
                {"name": "trainer", "image": "train:1",
                 "args": ["--lr=${params.lr}", "--opt=${params.opt}", "--m=${params.momentum}",
                          "--out=/runs/${study.name}/${trial.name}/${trial.number}", "cost=$${HOME}"],
                 "env": [{"name": "LOPPER_STUDY", "value": "stale"}]},
                {"name": "sidecar", "image": "side:1"}
            ]}}
        })
    }

    #[test]
    fn renders_placeholders_env_gpus_labels_owner() {
        let job = render_job(
            &study(template(), Some(2)),
            &trial(),
            &TrialExtras::default(),
        )
        .unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("digits-7"));
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[STUDY_LABEL], "digits");
        assert_eq!(labels[TRIAL_LABEL], "digits-7");
        assert_eq!(labels["team"], "ml");
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Trial", "u-trial")
        );
        assert_eq!(owner.controller, Some(true));
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pl = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(pl[TRIAL_LABEL], "digits-7");
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().unwrap(),
            &vec![
                "--lr=0.012".to_string(),
                "--opt=adam".into(),
                "--m=".into(),
                "--out=/runs/digits/digits-7/7".into(),
                "cost=${HOME}".into()
            ]
        );
        let env: BTreeMap<_, _> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.clone().unwrap()))
            .collect();
        assert_eq!(env["LOPPER_STUDY"], "digits");
        assert_eq!(env["LOPPER_TRIAL"], "digits-7");
        assert_eq!(env["LOPPER_TRIAL_NUMBER"], "7");
        assert_eq!(env["LOPPER_PARAM_LR"], "0.012");
        assert_eq!(env["LOPPER_PARAM_OPT"], "adam");
        let p: Value = serde_json::from_str(&env["LOPPER_PARAMS"]).unwrap();
        assert_eq!(p, serde_json::json!({"lr": 0.012, "opt": "adam"}));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "2");
        assert!(pod.containers[1].resources.is_none());
    }

    #[test]
    fn unknown_placeholder_and_bad_spec_are_errors() {
        let t = serde_json::json!({"template": {"spec": {"containers": [
            {"name": "a", "image": "x", "args": ["${params.nope}"]}]}}});
        assert_eq!(
            render_job(&study(t, None), &trial(), &TrialExtras::default()).unwrap_err(),
            RenderError::UnknownPlaceholder("params.nope".into())
        );
        let t = serde_json::json!({"template": {"spec": {"containers": [
            {"name": "a", "image": "x", "args": ["${trial.name"]}]}}});
        assert!(matches!(
            render_job(&study(t, None), &trial(), &TrialExtras::default()),
            Err(RenderError::Unterminated(_))
        ));
        let t = serde_json::json!({"template": {"spec": {"containers": "nope"}}});
        assert!(matches!(
            render_job(&study(t, None), &trial(), &TrialExtras::default()),
            Err(RenderError::InvalidJobSpec(_))
        ));
    }

    #[test]
    fn gpus_per_trial_from_shorthand_or_limits() {
        assert_eq!(gpus_per_trial(&study(template(), Some(3))), 3);
        assert_eq!(gpus_per_trial(&study(template(), None)), 0);
        let t = serde_json::json!({"template": {"spec": {"containers": [
            {"name": "a", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}});
        assert_eq!(gpus_per_trial(&study(t, None)), 2);
    }

    #[test]
    fn param_env_names() {
        assert_eq!(param_env_name("lr"), "LOPPER_PARAM_LR");
        assert_eq!(
            param_env_name("drop.out-rate"),
            "LOPPER_PARAM_DROP_OUT_RATE"
        );
    }
}
