//! `lopper run` end to end with the dependency-free quadratic trainer (examples/quadratic):
//! real processes, real signals, real files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const LOPPER: &str = env!("CARGO_BIN_EXE_lopper");

fn trainer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quadratic/train.py")
}

/// A Study manifest running the quadratic trainer with `args` (after `--x/--y`).
fn manifest(
    dir: &Path,
    params: &str,
    sampler: &str,
    pruner: &str,
    extra_spec: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    let mut all_args = vec![
        "--x".to_string(),
        "${params.x}".to_string(),
        "--y".to_string(),
        "${params.y}".to_string(),
    ];
    all_args.extend(args.iter().map(|s| s.to_string()));
    let args_yaml = all_args
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let env_yaml = env
        .iter()
        .map(|(k, v)| format!("{{name: {k}, value: {v:?}}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        r#"apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: quad}}
spec:
  objective: {{metric: loss, direction: minimize}}
  parameters:
{params}
  sampler: {sampler}
  pruner: {pruner}
{extra_spec}
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
              args: [{args_yaml}]
              env: [{env_yaml}]
"#,
        trainer = trainer().display().to_string(),
    );
    let path = dir.join("study.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const XY: &str = "    - {name: x, float: {low: -10.0, high: 10.0}}\n    - {name: \"y\", float: {low: -10.0, high: 10.0}}";

fn lopper(args: &[&str]) -> Command {
    let mut c = Command::new(LOPPER);
    c.args(args).stdin(Stdio::null());
    c
}

fn read_results(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("results file written");
    serde_json::from_str(&text).expect("results file parses")
}

/// Alive = exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

fn pids_in(dir: &Path) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".pid")
            && let Ok(text) = std::fs::read_to_string(e.path())
            && let Ok(pid) = text.trim().parse()
        {
            out.push((stem.to_string(), pid));
        }
    }
    out
}

fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("lopper run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn study_runs_to_max_trials_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let study = manifest(
        dir.path(),
        XY,
        "{random: {seed: 3}}",
        "{none: {}}",
        "  maxTrials: 6\n  parallelism: 3",
        &["--epochs", "5"],
        &[],
    );
    let results = dir.path().join("results.json");
    let png = dir.path().join("curves.png");
    let out = lopper(&[
        "run",
        study.to_str().unwrap(),
        "--output",
        results.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("MaxTrialsReached"), "{stdout}");
    let r = read_results(&results);
    assert_eq!(r["study"], "quad");
    assert_eq!(r["direction"], "minimize");
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t["number"], i as u64);
        assert_eq!(t["state"], "complete");
        assert_eq!(t["intermediate"].as_array().unwrap().len(), 5);
        let x = t["params"]["x"].as_f64().unwrap();
        let y = t["params"]["y"].as_f64().unwrap();
        let want = (x - 2.0).powi(2) + (y + 1.0).powi(2) + 10.0 / 5.0;
        assert!((t["value"].as_f64().unwrap() - want).abs() < 1e-4, "{t}");
    }
    assert_eq!(r["stepsRun"], 30);
    let best = r["best"]["number"].as_u64().unwrap() as usize;
    let best_value = r["best"]["value"].as_f64().unwrap();
    assert!(
        trials
            .iter()
            .all(|t| t["value"].as_f64().unwrap() >= best_value)
    );
    assert_eq!(trials[best]["value"].as_f64().unwrap(), best_value);

    let out = lopper(&[
        "plot",
        results.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--log-y",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.len() > 10_000, "PNG of {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn hopeless_trial_is_pruned_and_its_processes_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    // Two trials side by side (grid over x): x=2 is good (loss ≤ 10), x=40 hopeless (≥ 1444).
    // The threshold pruner cuts the hopeless one at its first report; it ignores SIGTERM and
    // has a grandchild, so SIGKILL to the whole process group is needed.
    let study = manifest(
        dir.path(),
        "    - {name: x, categorical: {choices: [2.0, 40.0]}}\n    - {name: y, categorical: {choices: [-1.0]}}",
        "{grid: {}}",
        "{threshold: {upper: 100.0}}",
        "  maxTrials: 2\n  parallelism: 2",
        &[
            "--epochs",
            "12",
            "--sleep",
            "0.5",
            "--child",
            "--ignore-sigterm",
            "--pid-dir",
            pids.to_str().unwrap(),
        ],
        &[],
    );
    let results = dir.path().join("results.json");
    let mut child = lopper(&[
        "run",
        study.to_str().unwrap(),
        "--output",
        results.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Watch every trial process while lopper runs: which ones died while it was still running.
    let mut seen: std::collections::BTreeMap<String, (i32, bool)> = Default::default();
    let start = Instant::now();
    let status = loop {
        for (name, pid) in pids_in(&pids) {
            let entry = seen.entry(name).or_insert((pid, false));
            if !alive(pid) {
                entry.1 = true;
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("lopper run hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let r = read_results(&results);
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    let pruned: Vec<&Value> = trials.iter().filter(|t| t["state"] == "pruned").collect();
    let complete: Vec<&Value> = trials.iter().filter(|t| t["state"] == "complete").collect();
    assert_eq!(pruned.len(), 1, "{r}");
    assert_eq!(complete.len(), 1, "{r}");
    let p = pruned[0];
    assert_eq!(p["params"]["x"], 40.0);
    assert_eq!(p["prunedAtStep"], 0);
    assert_eq!(p["reason"], "ThresholdPruner");
    // SIGTERM ignored: gone after the 1 s grace period, long before the good trial's 6 s.
    let p_secs = p["seconds"].as_f64().unwrap();
    let c_secs = complete[0]["seconds"].as_f64().unwrap();
    assert!((0.9..5.0).contains(&p_secs), "pruned trial ran {p_secs}s");
    assert!(
        c_secs > p_secs + 0.5,
        "complete {c_secs}s, pruned {p_secs}s"
    );
    let name = format!("quad-{}", p["number"]);
    for key in [name.clone(), format!("{name}.child")] {
        let (pid, died_while_running) = seen
            .get(&key)
            .unwrap_or_else(|| panic!("no pid file {key}: {seen:?}"));
        assert!(
            *died_while_running,
            "{key} (pid {pid}) outlived the prune until lopper ended"
        );
        assert!(!alive(*pid), "{key} (pid {pid}) still alive");
    }
    for (key, (pid, _)) in &seen {
        assert!(!alive(*pid), "{key} (pid {pid}) left behind");
    }
}

#[test]
fn crashing_trainer_fails_and_max_failed_trials_stops_the_study() {
    let dir = tempfile::tempdir().unwrap();
    let study = manifest(
        dir.path(),
        XY,
        "{random: {seed: 1}}",
        "{none: {}}",
        "  maxTrials: 10\n  parallelism: 1\n  maxFailedTrials: 1",
        &["--epochs", "5"],
        &[("QUADRATIC_CRASH", "1")],
    );
    let results = dir.path().join("results.json");
    let out = lopper(&[
        "run",
        study.to_str().unwrap(),
        "--output",
        results.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("simulated crash"), "{stderr}");
    let r = read_results(&results);
    assert_eq!(r["phase"], "Failed");
    assert_eq!(r["reason"], "TooManyFailures");
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2, "the study stops after 2 > 1 failures: {r}");
    for t in trials {
        assert_eq!(t["state"], "failed");
        assert_eq!(t["reason"], "Error");
        assert!(
            t["message"].as_str().unwrap().contains("exit code 3"),
            "{t}"
        );
        let tail = t["stderrTail"].as_str().unwrap();
        assert!(
            tail.contains("RuntimeError: simulated crash at epoch 2"),
            "{tail}"
        );
        // What it reported before crashing is kept.
        assert_eq!(t["intermediate"].as_array().unwrap().len(), 2);
    }
    assert!(r["best"].is_null());
}

#[test]
fn sigint_stops_every_trial_and_still_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let study = manifest(
        dir.path(),
        XY,
        "{random: {seed: 2}}",
        "{none: {}}",
        "  maxTrials: 8\n  parallelism: 2",
        &[
            "--epochs",
            "1000",
            "--sleep",
            "0.1",
            "--child",
            "--pid-dir",
            pids.to_str().unwrap(),
        ],
        &[],
    );
    let results = dir.path().join("results.json");
    let mut child = lopper(&[
        "run",
        study.to_str().unwrap(),
        "--output",
        results.to_str().unwrap(),
        "--grace",
        "2",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Both trials and their grandchildren up, and a few epochs reported.
    let start = Instant::now();
    while pids_in(&pids).len() < 4 {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("trials never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let all = pids_in(&pids);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(130), "{status:?}");
    for (name, pid) in &all {
        assert!(!alive(*pid), "{name} (pid {pid}) left behind after Ctrl-C");
    }
    let r = read_results(&results);
    assert_eq!(r["phase"], "Interrupted");
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2, "no trial started after Ctrl-C: {r}");
    for t in trials {
        assert_eq!(t["state"], "failed");
        assert_eq!(t["reason"], "Interrupted");
        assert!(!t["intermediate"].as_array().unwrap().is_empty(), "{t}");
    }
}

#[test]
fn warm_start_reads_earlier_results_and_bad_manifests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let study = manifest(
        dir.path(),
        XY,
        "{tpe: {seed: 4, startupTrials: 3}}",
        "{none: {}}",
        "  maxTrials: 3\n  parallelism: 3",
        &["--epochs", "2"],
        &[],
    );
    let first = dir.path().join("first.json");
    let out = lopper(&[
        "run",
        study.to_str().unwrap(),
        "-o",
        first.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = lopper(&[
        "run",
        study.to_str().unwrap(),
        "--warm-start",
        first.to_str().unwrap(),
        "--max-trials",
        "1",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warm start: 3 earlier trials"), "{stderr}");

    // An invalid space is refused with the engine's message, before anything runs.
    let stderr = refused(dir.path(), "    - {name: x, float: {low: 1.0, high: 0.0}}");
    assert!(stderr.contains("spec.parameters"), "{stderr}");

    // So is a template naming a parameter the space lacks (the args use `${params.y}`), as
    // the operator refuses it: one renderer for both.
    let stderr = refused(dir.path(), "    - {name: x, float: {low: 0.0, high: 1.0}}");
    assert!(
        stderr.contains("spec.trialTemplate.spec: unknown placeholder ${params.y}"),
        "{stderr}"
    );
    assert!(!stderr.contains("started"), "no trial ran: {stderr}");
}

/// Runs a one-trial manifest with these parameters, which `lopper run` must refuse (exit 1);
/// returns its stderr.
fn refused(dir: &Path, parameters: &str) -> String {
    let bad = manifest(
        dir,
        parameters,
        "{random: {}}",
        "{none: {}}",
        "  maxTrials: 1",
        &[],
        &[],
    );
    let out = lopper(&["run", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn push_trainer_reports_to_the_loopback_endpoint_and_is_told_to_stop() {
    let dir = tempfile::tempdir().unwrap();
    let study = manifest(
        dir.path(),
        "    - {name: x, categorical: {choices: [2.0, 40.0]}}\n    - {name: y, categorical: {choices: [-1.0]}}",
        "{grid: {}}",
        "{threshold: {upper: 100.0}}",
        "  maxTrials: 2\n  parallelism: 2",
        &["--epochs", "6", "--report", "push"],
        &[],
    );
    // Same manifest, metrics from the push endpoint instead of the log.
    let text = std::fs::read_to_string(&study)
        .unwrap()
        .replace("{logs: {format: keyValue, stepKey: epoch}}", "{push: {}}");
    std::fs::write(&study, text).unwrap();
    let results = dir.path().join("results.json");
    let out = lopper(&[
        "run",
        study.to_str().unwrap(),
        "-o",
        results.to_str().unwrap(),
        "-v",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Pruned on its first push (answered `prune: true`, and its process group stopped).
    assert!(stderr.contains("pruned at step 0"), "{stderr}");
    let r = read_results(&results);
    for t in r["trials"].as_array().unwrap() {
        if t["params"]["x"] == 40.0 {
            assert_eq!(t["state"], "pruned", "{t}");
            assert_eq!(t["intermediate"].as_array().unwrap().len(), 1);
        } else {
            assert_eq!(t["state"], "complete", "{t}");
            assert_eq!(t["intermediate"].as_array().unwrap().len(), 6);
        }
    }
}

#[test]
fn a_command_that_cannot_start_is_a_failed_trial() {
    let dir = tempfile::tempdir().unwrap();
    let study = manifest(
        dir.path(),
        XY,
        "{random: {}}",
        "{none: {}}",
        "  maxTrials: 5\n  maxFailedTrials: 0",
        &[],
        &[],
    );
    let text = std::fs::read_to_string(&study)
        .unwrap()
        .replace("command: [python3,", "command: [no-such-program-lopper,");
    std::fs::write(&study, text).unwrap();
    let results = dir.path().join("results.json");
    let out = lopper(&[
        "run",
        study.to_str().unwrap(),
        "-o",
        results.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let r = read_results(&results);
    assert_eq!(r["reason"], "TooManyFailures");
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0]["state"], "failed");
    let msg = trials[0]["message"].as_str().unwrap();
    assert!(msg.contains("no-such-program-lopper"), "{msg}");
}
