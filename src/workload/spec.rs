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
    super::job::render_job(study, &probe, &Default::default()).map_err(|e| e.to_string())?;
    Ok((space, sampler_spec, sampler))
}

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
