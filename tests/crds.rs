//! `crds/` must equal what `lopper crd` prints (run `cargo run -- crd --kind Study > crds/study.yaml`,
//! and likewise for `Trial` and `CurveChunk`, after changing the CRD types), and the
//! schemas must be structural, as the API server requires.

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
        } else if path.contains("curvechunk") {
            "CurveChunk"
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
    // Structural: every schema inlined, no unions the API server would refuse (an int or
    // "auto" is `x-kubernetes-int-or-string`, a scalar of any type preserves unknown
    // fields).
    for crd in [&study, &serde_json::to_value(trial_crd()).unwrap()] {
        let text = crd.to_string();
        for bad in [
            "\"$ref\"",
            "\"anyOf\"",
            "\"oneOf\"",
            "\"allOf\"",
            "\"type\":\"null\"",
        ] {
            assert!(!text.contains(bad), "{bad} in {}", crd["metadata"]["name"]);
        }
    }
    let spec = &study["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let pruner = &spec["properties"]["pruner"]["properties"];
    assert_eq!(
        pruner["successiveHalving"]["properties"]["minResource"]["x-kubernetes-int-or-string"],
        true
    );
    assert_eq!(
        pruner["hyperband"]["properties"]["maxResource"]["x-kubernetes-int-or-string"],
        true
    );
    // Defaults shown are the engine's.
    assert_eq!(
        pruner["median"]["properties"]["startupTrials"]["default"],
        5
    );
    assert_eq!(
        pruner["successiveHalving"]["properties"]["reductionFactor"]["default"],
        4
    );
    assert_eq!(
        pruner["wilcoxon"]["properties"]["pThreshold"]["default"],
        0.1
    );
    let param = &spec["properties"]["parameters"]["items"]["properties"];
    assert_eq!(
        param["categorical"]["properties"]["choices"]["items"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(param["when"]["additionalProperties"]["type"], "array");
    assert_eq!(spec["properties"]["sampler"]["maxProperties"], 1);
    assert_eq!(spec["properties"]["pruner"]["maxProperties"], 1);
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
