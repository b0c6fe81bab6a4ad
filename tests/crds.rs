//! `crds/` must equal what `lopper crd` prints (run `cargo run -- crd --kind Study > crds/study.yaml`
//! and `cargo run -- crd --kind Trial > crds/trial.yaml` after changing the CRD types).

use lopper::crd::{curve_chunk_crd, study_crd, to_yaml, trial_crd};

fn check(path: &str, want: String) {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("LOPPER_UPDATE_CRDS").is_some() {
        std::fs::write(&full, &want).unwrap();
    }
    let have = std::fs::read_to_string(&full).unwrap_or_default();
    assert!(
        have == want,
        "{path} is stale: run `cargo run -- crd --kind {kind} > {path}` (or LOPPER_UPDATE_CRDS=1 cargo test --test crds)",
        kind = if path.contains("study") {
            "Study"
        } else {
            "Trial"
        }
    );
}

#[test]
fn crds_are_up_to_date() {
    check("crds/study.yaml", to_yaml(&[study_crd()]));
    check("crds/trial.yaml", to_yaml(&[trial_crd()]));
    check("crds/curvechunk.yaml", to_yaml(&[curve_chunk_crd()]));
}

#[test]
fn crds_are_structural_enough() {
    let study = serde_json::to_value(study_crd()).unwrap();
    let text = study.to_string();
    assert!(!text.contains("\"$ref\""), "schemas must be inlined");
    assert!(!text.contains("\"anyOf\"") || text.contains("x-kubernetes-int-or-string"));
    let spec = &study["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    for k in ["sampler", "pruner", "metrics"] {
        assert!(
            spec["properties"][k]["x-kubernetes-validations"].is_array(),
            "{k} has its exactly-one rule"
        );
    }
    assert_eq!(study["spec"]["names"]["shortNames"][0], "st");
    let trial = serde_json::to_value(trial_crd()).unwrap();
    assert_eq!(trial["spec"]["names"]["shortNames"][0], "tr");
}
