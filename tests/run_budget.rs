//! `lopper run` honours `spec.budget` as the operator does: with the dependency-free
//! quadratic trainer (examples/quadratic), real processes and log parsing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const LOPPER: &str = env!("CARGO_BIN_EXE_lopper");

/// A Study of the quadratic trainer with `budget`, `parallelism` and trainer `args`.
fn manifest(dir: &Path, budget: &str, parallelism: u32, args: &str) -> PathBuf {
    let trainer = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quadratic/train.py");
    let text = format!(
        r#"apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: quad}}
spec:
  objective: {{metric: loss, direction: minimize}}
  parameters:
    - {{name: x, float: {{low: -10.0, high: 10.0}}}}
    - {{name: "y", float: {{low: -10.0, high: 10.0}}}}
  sampler: {{random: {{seed: 3}}}}
  budget: {budget}
  parallelism: {parallelism}
  metrics: {{logs: {{format: keyValue, stepKey: epoch}}}}
  trialTemplate:
    spec:
      template:
        spec:
          terminationGracePeriodSeconds: 1
          restartPolicy: Never
          containers:
            - name: trainer
              image: python:3.12-slim
              command: [python3, {trainer:?}]
              args: ["--x", "${{params.x}}", "--y", "${{params.y}}", {args}]
"#,
        trainer = trainer.display().to_string(),
    );
    let path = dir.join("study.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(study: &Path, results: &Path) -> (String, Value) {
    let out = Command::new(LOPPER)
        .args([
            "run",
            study.to_str().unwrap(),
            "--output",
            results.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let r = serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
    (text, r)
}

#[test]
fn a_step_budget_ends_the_study_and_the_last_trial_finishes() {
    let dir = tempfile::tempdir().unwrap();
    // 5 epochs a trial, one at a time, 17 steps: trials 0-2 spend 15, trial 3 starts with
    // 2 left, spends them mid-trial and still runs to its end (onSpent: finish).
    let study = manifest(dir.path(), "{steps: 17}", 1, r#""--epochs", "5""#);
    let results = dir.path().join("results.json");
    let (log, r) = run(&study, &results);
    assert!(log.contains("budget 17 steps"), "{log}");
    assert!(
        log.contains("budget spent: 17 of 17 budgeted steps reported"),
        "{log}"
    );
    assert_eq!(
        (r["phase"].as_str(), r["reason"].as_str()),
        (Some("Succeeded"), Some("BudgetSpent"))
    );
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 4, "no trial after the budget was spent");
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );
    assert_eq!(r["stepsRun"], 20);
    assert_eq!(r["budget"]["stepsSpent"], 20);
    assert_eq!(r["budget"]["stepsLeft"], 0);
    assert_eq!(r["budget"]["summary"], "20/17 steps");
}

#[test]
fn on_spent_stop_prunes_the_running_trials() {
    let dir = tempfile::tempdir().unwrap();
    let study = manifest(
        dir.path(),
        "{steps: 6, onSpent: stop}",
        2,
        r#""--epochs", "50", "--sleep", "0.2""#,
    );
    let results = dir.path().join("results.json");
    let (log, r) = run(&study, &results);
    assert_eq!(r["reason"], "BudgetSpent", "{log}");
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2, "{log}");
    for t in trials {
        assert_eq!(t["state"], "pruned", "{t}");
        assert_eq!(t["reason"], "BudgetSpent", "{t}");
        let n = t["intermediate"].as_array().unwrap().len();
        assert!(
            n < 50 && t["prunedAtStep"].as_i64() == Some(n as i64 - 1),
            "{t}"
        );
    }
    let spent = r["budget"]["stepsSpent"].as_u64().unwrap();
    // Both trials report at about the same time: at most one step each past the budget.
    assert!((6..=8).contains(&spent), "{spent}");
    assert!(
        r["seconds"].as_f64().unwrap() < 20.0,
        "stopped, not run to 50 epochs"
    );
}

#[test]
fn a_manifest_without_max_trials_or_budget_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let study = manifest(dir.path(), "{steps: 5}", 1, r#""--epochs", "5""#);
    let text = std::fs::read_to_string(&study)
        .unwrap()
        .replace("  budget: {steps: 5}\n", "");
    std::fs::write(&study, text).unwrap();
    let out = Command::new(LOPPER)
        .args(["run", study.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.maxTrials is required unless spec.budget is set"),
        "{err}"
    );
}
