//! The `lopper.dev/v1alpha1` custom resources: [`Study`] and [`Trial`].
//!
//! [`crds`] returns both CustomResourceDefinitions exactly as `lopper crd` prints them and as
//! `crds/` holds them, with the admission rules of [`schema`] applied.

pub mod engine_api;
pub mod schema;
pub mod study;
pub mod trial;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use study::{
    BestTrial, GpuSeconds, Objective, Study, StudyPhase, StudySpec, StudyStatus, TemplateMetadata,
    TrialCounts, TrialTemplate, WarmStart,
};
pub use trial::{MAX_POINTS, Point, Trial, TrialPhase, TrialSpec, TrialStatus};

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

/// Both CRDs, Study first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![study_crd(), trial_crd()]
}

/// The deterministic name of trial `number` of `study`.
pub fn trial_name(study: &str, number: u64) -> String {
    format!("{study}-{number}")
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
