//! The `lopper.dev/v1alpha1` custom resources: [`Study`] and [`Trial`].
//!
//! [`crds`] returns every CustomResourceDefinition exactly as `lopper crd` prints them and as
//! `crds/` holds them, with the admission rules of [`schema`] applied.

pub mod curve;
pub mod engine_api;
pub mod schema;
pub mod study;
pub mod trial;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use study::{
    BestTrial, GpuSeconds, Objective, OnPreemption, Study, StudyPhase, StudySpec, StudyStatus,
    TemplateMetadata, TrialCounts, TrialTemplate, WarmStart,
};
pub use trial::{Point, Trial, TrialPhase, TrialSpec, TrialStatus};

/// The API group of Lopper's resources.
pub const GROUP: &str = "lopper.dev";
/// Label on Trials, Jobs and pods naming the Study.
pub const STUDY_LABEL: &str = "lopper.dev/study";
/// Label on Jobs and pods naming the Trial.
pub const TRIAL_LABEL: &str = "lopper.dev/trial";
/// Label on Jobs and pods holding the trial number.
pub const NUMBER_LABEL: &str = "lopper.dev/trial-number";

/// The Study CRD with its admission rules.
pub fn study_crd() -> CustomResourceDefinition {
    let mut crd = Study::crd();
    schema::patch_schema(&mut crd, schema::study_rules);
    crd
}

/// The Trial CRD.
pub fn trial_crd() -> CustomResourceDefinition {
    Trial::crd()
}

/// The CurveChunk CRD (sealed points of long curves, see [`curve`]).
pub fn curve_chunk_crd() -> CustomResourceDefinition {
    curve::CurveChunk::crd()
}

/// Every CRD, in the order of their files in `crds/` (by name: curvechunk, study, trial), so
/// `lopper crd` prints what `cat crds/*.yaml` shows.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![curve_chunk_crd(), study_crd(), trial_crd()]
}

/// The deterministic name of trial `number` of `study`.
pub fn trial_name(study: &str, number: u64) -> String {
    format!("{study}-{number}")
}

/// `LOPPER_PARAM_<NAME>`: the name upper-cased, anything but ASCII letters and digits as `_`.
pub fn param_env_name(name: &str) -> String {
    let mut s = String::from("LOPPER_PARAM_");
    s.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    s
}

/// The `LOPPER_*` environment every trial gets, in a Job or under `lopper run`:
/// `LOPPER_STUDY`, `LOPPER_TRIAL`, `LOPPER_TRIAL_NUMBER`, `LOPPER_PARAMS` (JSON) and one
/// `LOPPER_PARAM_<NAME>` per active parameter.
pub fn trial_env(
    study: &str,
    trial: &str,
    number: u64,
    params: &crate::engine::Params,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("LOPPER_STUDY".to_string(), study.to_string()),
        ("LOPPER_TRIAL".to_string(), trial.to_string()),
        ("LOPPER_TRIAL_NUMBER".to_string(), number.to_string()),
        (
            "LOPPER_PARAMS".to_string(),
            serde_json::to_string(params).unwrap_or_else(|_| "{}".into()),
        ),
    ];
    for (name, value) in params {
        env.push((param_env_name(name), value.to_string()));
    }
    env
}

/// Renders CRDs as a multi-document YAML stream.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(crd).expect("CRD to YAML"));
    }
    out
}

/// Reads a stored spec with `read` (the type's derived deserializer), or says where and why it
/// cannot: `spec.<path>: <error>`. Studies and Trials use it to read leniently (see
/// `StudySpec`'s `Deserialize`): one unreadable object must not fail a whole list or watch.
pub(crate) fn read_spec<T>(
    value: &serde_json::Value,
    read: impl for<'t> FnOnce(
        serde_path_to_error::Deserializer<'_, 't, &serde_json::Value>,
    ) -> Result<T, serde_json::Error>,
) -> Result<T, String> {
    let mut track = serde_path_to_error::Track::new();
    let r = read(serde_path_to_error::Deserializer::new(value, &mut track));
    r.map_err(|e| {
        let path = track.path().to_string();
        if path.is_empty() || path == "." {
            format!("spec: {e}")
        } else {
            format!("spec.{path}: {e}")
        }
    })
}
