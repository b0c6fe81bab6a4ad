//! `lopper run` with the `tensorboard` and `file` metric sources: the trainer writes event
//! files or a CSV file where `LOPPER_METRICS_PATH` says (the trial's own folder under
//! `.lopper/<trial>/`), and `lopper run` follows it with the sidecar's code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const LOPPER: &str = env!("CARGO_BIN_EXE_lopper");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(manifest: &Path, path_prefix: Option<&Path>) -> Value {
    let out = manifest.with_file_name("results.json");
    let mut c = Command::new(LOPPER);
    c.arg("run").arg(manifest).arg("--output").arg(&out);
    if let Some(p) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", p.display()));
    }
    let o = c.stdin(Stdio::null()).output().expect("run lopper");
    assert!(
        o.status.success(),
        "lopper run failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn curve(t: &Value) -> Vec<(i64, f64)> {
    t["intermediate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap_or(f64::NAN)))
        .collect()
}

/// examples/tensorboard: the digits trainer with tensorboardX (the venv of examples/setup.sh).
#[test]
fn tensorboard_example_is_followed_and_pruned() {
    let venv = repo().join(".venv/bin");
    assert!(
        venv.join("python").exists(),
        "no .venv: run `bash examples/setup.sh` (as .ci/run does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    for f in ["study.yaml", "train.py"] {
        std::fs::copy(
            repo().join("examples/tensorboard").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    let r = run(&tmp.path().join("study.yaml"), Some(&venv));
    let trials = r["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6, "{r}");
    let mut states = std::collections::BTreeMap::new();
    for t in trials {
        let state = t["state"].as_str().unwrap().to_string();
        let c = curve(t);
        let steps: Vec<i64> = c.iter().map(|p| p.0).collect();
        // Every epoch the trainer wrote, in order, once.
        assert_eq!(steps, (0..steps.len() as i64).collect::<Vec<_>>(), "{t}");
        match state.as_str() {
            "complete" => {
                assert_eq!(steps.len(), 8, "{t}");
                assert_eq!(t["value"].as_f64(), c.last().map(|p| p.1), "{t}");
            }
            "pruned" => assert!(steps.len() < 8, "{t}"),
            other => panic!("trial {other}: {t}"),
        }
        *states.entry(state).or_insert(0) += 1;
        // The events sit in the trial's own folder, where LOPPER_METRICS_PATH pointed.
        let dir = tmp
            .path()
            .join(format!(".lopper/digits-tb-{}/logs", t["number"]));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("tfevents"))
            .collect();
        assert_eq!(files.len(), 1, "{}", dir.display());
    }
    assert!(states.get("pruned").is_some_and(|n| *n >= 1), "{states:?}");
    assert!(
        states.get("complete").is_some_and(|n| *n >= 2),
        "{states:?}"
    );
}

/// A CSV written by a shell trainer, rows apart and the last line without its newline; a
/// second run of the same study does not read the first run's file.
#[test]
fn csv_file_is_followed_to_its_last_line() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = tmp.path().join("study.yaml");
    let text = r#"apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {name: csv}
spec:
  objective: {metric: val_loss, direction: minimize}
  parameters:
    - name: x
      float: {low: 1.0, high: 2.0}
  sampler: {random: {seed: 1}}
  maxTrials: 2
  parallelism: 2
  metrics: {file: {path: /out/metrics.csv, format: csv, stepKey: epoch}}
  trialTemplate:
    spec:
      template:
        spec:
          containers:
            - name: trainer
              image: none
              command: [sh, -c]
              args:
                - |
                  f="$LOPPER_METRICS_PATH"
                  echo "epoch,train_loss,val_loss" > "$f"
                  for e in 0 1 2; do echo "$e,${params.x},$e.25" >> "$f"; sleep 0.3; done
                  printf '3,9,0.5' >> "$f"
"#;
    // The second run writes other values: had the first run's file been left in the trial's
    // folder, its records would be read first and those steps taken.
    for frac in [0.25, 0.75] {
        let digits = format!("{frac}").trim_start_matches("0.").to_string();
        std::fs::write(&manifest, text.replace("$e.25", &format!("$e.{digits}"))).unwrap();
        let r = run(&manifest, None);
        for t in r["trials"].as_array().unwrap() {
            assert_eq!(t["state"], "complete", "{t}");
            let want: Vec<(i64, f64)> = (0..3)
                .map(|e| (e, e as f64 + frac))
                .chain([(3, 0.5)])
                .collect();
            assert_eq!(curve(t), want, "{t}");
            assert_eq!(t["value"].as_f64(), Some(0.5));
        }
    }
}
