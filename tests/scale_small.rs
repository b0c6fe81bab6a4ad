//! The scale and fault harness (bench/scale.sh) in its small form, as a test: 4 studies × 10
//! trials, 4 in parallel each, the operator SIGKILLed twice mid-study, trainers played over the
//! push endpoint by a separate process. It fails when any of the harness's checks fails:
//! exactly `maxTrials` dense trial numbers per study, all terminal, no Job of a pruned trial,
//! none without its Trial, never two Jobs for one trial, nothing left running 60 s after the
//! last report.

mod support;

use std::process::Command;

#[test]
fn small_scale_run_with_two_sigkills_loses_and_duplicates_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(support::cluster());
    let out = Command::new("python3")
        .arg(support::repo_root().join("bench/scale/harness.py"))
        .args([
            "--studies",
            "4",
            "--trials",
            "10",
            "--parallel",
            "4",
            "--steps",
            "10",
            "--interval",
            "0.5",
            "--kill",
            "2",
            "--timeout",
            "600",
            "--label",
            "ci-small",
            "--namespace",
            "lopper-scale-ci",
            "--port",
            "18481",
        ])
        .arg("--lopper")
        .arg(env!("CARGO_BIN_EXE_lopper"))
        .output()
        .expect("python3 runs the harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the harness's checks failed:\n{stdout}"
    );
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .expect("a SUMMARY line");
    let s: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(s["checks"], "ok");
    assert_eq!(s["kills"], 2, "the operator was killed twice");
    assert!(
        s["reports"].as_u64().unwrap() > 40,
        "trainers reported: {s}"
    );
    assert!(
        s["prunes"].as_u64().unwrap() > 0,
        "the median pruner pruned someone: {s}"
    );
}
