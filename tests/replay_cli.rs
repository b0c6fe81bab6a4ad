//! `lopper replay` as a process: JSON or YAML from a file or standard input, the outcome as
//! JSON on standard output, malformed input named on standard error with exit code 2.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const LOPPER: &str = env!("CARGO_BIN_EXE_lopper");

fn replay(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(LOPPER)
        .arg("replay")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lopper");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn states(v: &Value) -> Vec<&str> {
    v["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect()
}

#[test]
fn json_file_and_yaml_stdin_replay_alike() {
    let json = r#"{"study": "cli", "pruner": {"threshold": {"upper": 1.0}},
        "trials": [{"values": [0.5, 0.4]}, {"values": [0.5, 2.0, 0.1]}, {"values": [0.3, null]}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.json");
    std::fs::write(&path, json).unwrap();
    let from_file = stdout_json(&replay(&["--input", path.to_str().unwrap()], ""));
    assert_eq!(states(&from_file), ["complete", "pruned", "pruned"]);
    assert_eq!(from_file["trials"][1]["prunedAtStep"], 1);
    assert_eq!(from_file["stepsSaved"], 1);

    let yaml = "study: cli\npruner: {threshold: {upper: 1.0}}\ntrials:\n  - values: [0.5, 0.4]\n  \
                - values: [0.5, 2.0, 0.1]\n  - values: [0.3, ~]\n";
    let from_yaml = stdout_json(&replay(&["--input", "-"], yaml));
    assert_eq!(from_file, from_yaml);

    let out = replay(&["--input", "-", "--pretty"], json);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n  \"trials\": ["));
    assert_eq!(stdout_json(&out), from_file);
}

#[test]
fn malformed_input_is_named_with_exit_code_2() {
    let cases = [
        (
            r#"{"pruner": {"none": {}}, "trials": [{"values": [1]}, {"values": [1, 2, "x"]}]}"#,
            r#"trials[1].values[2]: must be a number or null, got "x""#,
        ),
        (
            r#"{"pruner": {"none": {}}, "trials": [{"values": [1], "extra": 0}]}"#,
            "trials[0].extra: unknown field, expected steps or values",
        ),
        (
            "pruner: {none: {}}\ntrials:\n  - steps: [0, 1]\n",
            "trials[0].values: missing required field",
        ),
        (
            r#"{"pruner": {"median": {"warmup": 1}}, "trials": []}"#,
            "pruner.median: unknown field `warmup`, expected one of startupTrials, \
             warmupSteps, intervalSteps, minTrials",
        ),
    ];
    for (input, want) in cases {
        let out = replay(&["--input", "-"], input);
        assert_eq!(out.status.code(), Some(2), "{input}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("error: -: {want}\n")
        );
    }
}
