//! What a Study's spec means before anything runs: the checks shared by the operator (an
//! `InvalidSpec` condition) and `lopper run` (refused before starting), and the rules the
//! engine's policy reads.

use kube::ResourceExt;

use crate::crd::{Study, Trial, TrialSpec};
use crate::engine::Params;
use crate::engine::policy::Rules;
use crate::engine::samplers::{self, Sampler, SamplerSpec};
use crate::engine::space::SearchSpace;

/// Builds what the spec describes (the space, the sampler's spec with the study's default
/// seed, and the sampler), or says what is wrong (the `InvalidSpec` message).
pub fn validate(study: &Study) -> Result<(SearchSpace, SamplerSpec, Box<dyn Sampler>), String> {
    if let Some(msg) = &study.spec.invalid {
        return Err(msg.clone());
    }
    // First: the asha pruner's own check would otherwise report a missing budget.
    match (&study.spec.budget, study.spec.max_trials) {
        (None, None) => return Err("spec.maxTrials is required unless spec.budget is set".into()),
        (Some(b), _) => b.validate().map_err(|e| e.to_string())?,
        (None, Some(_)) => {}
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
        && let Some(max) = study.spec.max_trials
        && m >= max
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
    let kind = super::kinds::WorkloadKind::of(study);
    let tt = &study.spec.trial_template;
    let given = [
        tt.spec.is_some(),
        tt.job_set.is_some(),
        tt.train_job.is_some(),
    ];
    if given.iter().filter(|x| **x).count() != 1 {
        return Err("spec.trialTemplate must have exactly one of: spec (a batch/v1 JobSpec), jobSet, trainJob".into());
    }
    if kind != super::kinds::WorkloadKind::Job {
        // The sidecar follows one pod's file; a multi-node trial has many writers.
        if matches!(
            study.metrics(),
            crate::crd::engine_api::MetricsSpec::File(_)
                | crate::crd::engine_api::MetricsSpec::Tensorboard(_)
        ) {
            return Err(format!(
                "spec.metrics: file and tensorboard need a Job template (spec.trialTemplate.spec); with spec.trialTemplate.{} use logs, prometheus or push",
                kind.field()
            ));
        }
        // A TrainJob's pods come from its runtime: the Trainer lets no one patch their priority.
        if study.spec.priority_class_name.is_some() && kind == super::kinds::WorkloadKind::TrainJob
        {
            return Err(PRIORITY_TRAINJOB.into());
        }
        if tt.primary_container.is_some() && kind == super::kinds::WorkloadKind::TrainJob {
            return Err("spec.trialTemplate.primaryContainer: a trainJob's container is the runtime's trainer; leave it out".into());
        }
    }
    if tt.primary_replicated_job.is_some() && kind != super::kinds::WorkloadKind::JobSet {
        return Err(
            "spec.trialTemplate.primaryReplicatedJob needs spec.trialTemplate.jobSet".into(),
        );
    }
    super::kinds::render(study, &probe, &Default::default()).map_err(|e| e.to_string())?;
    Ok((space, sampler_spec, sampler))
}

/// Why `spec.priorityClassName` is refused with a trainJob template (CEL says the same).
pub const PRIORITY_TRAINJOB: &str = "spec.priorityClassName: not applied to a trainJob template (its pods' priority comes from the TrainingRuntime); set priorityClassName there, or label trialTemplate.metadata with kueue.x-k8s.io/priority-class for a Kueue WorkloadPriorityClass";

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
        budget: study.spec.budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trainjob_study(priority: Option<&str>) -> Study {
        let mut s = crate::workload::job::tests::study(serde_json::json!({}), None);
        s.spec.trial_template.spec = None;
        s.spec.trial_template.train_job = Some(
            serde_json::from_value(serde_json::json!({
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"numNodes": 2}
            }))
            .unwrap(),
        );
        s.spec.priority_class_name = priority.map(String::from);
        s
    }

    #[test]
    fn a_trainjob_template_refuses_a_priority_class_it_cannot_apply() {
        assert!(validate(&trainjob_study(None)).is_ok());
        let e = validate(&trainjob_study(Some("research-low")))
            .err()
            .unwrap();
        assert!(
            e.starts_with("spec.priorityClassName: not applied to a trainJob"),
            "{e}"
        );
        // A Job template takes it (every pod gets it).
        let mut job = crate::workload::job::tests::study(
            serde_json::json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "i"}]}}}),
            None,
        );
        job.spec.priority_class_name = Some("research-low".into());
        assert!(validate(&job).is_ok(), "{:?}", validate(&job).err());
    }
}
