//! Corpus tests of the log-line parser (shared by the operator's log follower and `lopper run`)
//! and of the follower's resume logic against recorded `pods/log?follow&timestamps` answers.
//!
//! Fixtures: `tests/fixtures/logs/` (Katib-style key=value output, JSON lines, two recorded
//! log streams where the first breaks in the middle of a line).

use std::path::PathBuf;

use lopper::metrics::logs::FollowState;
use lopper::metrics::{LineBuffer, LineParser, LogFormat, LogsSpec};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn spec(format: LogFormat, step_key: &str) -> LogsSpec {
    LogsSpec {
        format,
        step_key: step_key.into(),
        pattern: None,
    }
}

/// Feeds every line; NaN compared as NaN.
fn run(p: &mut LineParser, text: &str) -> Vec<(i64, f64)> {
    let mut b = LineBuffer::default();
    let mut lines = b.push(text.as_bytes());
    lines.extend(b.finish());
    lines.iter().filter_map(|l| p.feed(l)).collect()
}

fn assert_points(got: &[(i64, f64)], want: &[(i64, f64)]) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0, "got {got:?}, want {want:?}");
        assert!(
            (g.1.is_nan() && w.1.is_nan()) || g.1 == w.1,
            "got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn katib_key_value_corpus() {
    let mut p = LineParser::new(&spec(LogFormat::KeyValue, "epoch"), "val_loss").unwrap();
    let got = run(&mut p, &fixture("katib.txt"));
    assert_points(
        &got,
        &[
            (0, 0.69),
            (1, 0.51),
            (2, 0.43),
            (3, 0.38),
            // A diverged loss is a value, as Optuna records it.
            (4, f64::INFINITY),
            (5, f64::NAN),
            (6, f64::NEG_INFINITY),
            (7, 0.35),
            (8, 0.34),
            (9, 0.33),
        ],
    );
}

#[test]
fn json_lines_corpus() {
    let mut p = LineParser::new(&spec(LogFormat::Json, "epoch"), "val_loss").unwrap();
    let got = run(&mut p, &fixture("json.txt"));
    assert_points(
        &got,
        &[
            (0, 0.91),
            (1, 0.55),
            (2, 0.50),
            (3, f64::NAN),
            (4, f64::INFINITY),
            (5, 0.45),
            (7, 0.39),
            (8, 0.38),
            (9, 0.37),
        ],
    );
}

#[test]
fn regex_corpus() {
    let s = LogsSpec {
        format: LogFormat::Regex,
        step_key: "step".into(),
        pattern: Some(r"^\[(?P<step>\d+)/\d+\].*?valid loss (?P<value>\S+)".into()),
    };
    let mut p = LineParser::new(&s, "ignored").unwrap();
    let text = "[1/10] train loss 0.9 valid loss 0.8\nnoise\n[2/10] train loss 0.7 valid loss 0.6\n[2/10] again valid loss 0.1\n[3/10] valid loss nan\n";
    assert_points(&run(&mut p, text), &[(1, 0.8), (2, 0.6), (3, f64::NAN)]);
    // without a step group: every match is the next step
    let s = LogsSpec {
        pattern: Some(r"loss: (?P<value>\S+)".into()),
        ..s
    };
    let mut p = LineParser::new(&s, "ignored").unwrap();
    assert_points(
        &run(&mut p, "loss: 0.5\nloss: oops\nloss: 0.4\n"),
        &[(0, 0.5), (1, 0.4)],
    );
}

#[test]
fn noise_unicode_and_control_characters() {
    let mut p = LineParser::new(&spec(LogFormat::KeyValue, "step"), "loss").unwrap();
    let text = "Ünïcödé ✓ 学习率=0.1 loss=0.5 🚀\n\
                \u{1b}[1;32mstep=1\u{1b}[0m \u{1b}[33mloss=0.4\u{1b}[0m\n\
                \0\u{7}binary\u{fffd} junk loss=\n\
                ==== loss ==== = ====\n\
                 step=2 ↳ loss=0.3 ∎\n\
                损失=0.1 step=3\n";
    assert_points(&run(&mut p, text), &[(0, 0.5), (1, 0.4), (2, 0.3)]);
    // a unicode key is a key like any other
    let mut p = LineParser::new(&spec(LogFormat::KeyValue, "step"), "损失").unwrap();
    assert_points(&run(&mut p, "损失=0.1 step=3\n"), &[(3, 0.1)]);
}

#[test]
fn partial_lines_in_any_chunking() {
    let text = fixture("katib.txt");
    let bytes = text.as_bytes();
    let mut whole = LineParser::new(&spec(LogFormat::KeyValue, "epoch"), "val_loss").unwrap();
    let want = run(&mut whole, &text);
    // Deterministic pseudo-random chunk sizes, including 1-byte chunks that split UTF-8.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..50 {
        let mut p = LineParser::new(&spec(LogFormat::KeyValue, "epoch"), "val_loss").unwrap();
        let mut b = LineBuffer::default();
        let mut got = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = if round % 5 == 0 {
                1
            } else {
                1 + (seed % 64) as usize
            };
            let end = (i + n).min(bytes.len());
            for l in b.push(&bytes[i..end]) {
                got.extend(p.feed(&l));
            }
            i = end;
        }
        got.extend(b.finish().and_then(|l| p.feed(&l)));
        assert_points(&got, &want);
    }
}

#[test]
fn very_long_lines() {
    let mut p = LineParser::new(&spec(LogFormat::KeyValue, "step"), "loss").unwrap();
    // 300 KB of noise then the metric: found.
    let long = format!("{} step=4 loss=0.25", "x=y ".repeat(75_000));
    assert_eq!(p.feed(&long), Some((4, 0.25)));
    // A 3 MB line through the buffer is cut at the limit (the tail is lost), without panicking,
    // and the next line still parses.
    let mut b = LineBuffer::default();
    let mut huge = "a".repeat(3 << 20);
    huge.push_str(" step=5 loss=0.2\nstep=6 loss=0.1\n");
    let lines = b.push(huge.as_bytes());
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), lopper::metrics::parser::MAX_LINE_BYTES);
    let got: Vec<_> = lines.iter().filter_map(|l| p.feed(l)).collect();
    assert_eq!(got, vec![(6, 0.1)]);
    // JSON: a long line with a big array is fine.
    let mut p = LineParser::new(&spec(LogFormat::Json, "epoch"), "val_loss").unwrap();
    let arr = vec!["0.5"; 50_000].join(",");
    assert_eq!(
        p.feed(&format!(
            r#"{{"hist": [{arr}], "epoch": 1, "val_loss": 0.5}}"#
        )),
        Some((1, 0.5))
    );
}

/// The follower's resume logic against two recorded `pods/log?follow=true&timestamps=true`
/// answers: the first breaks in the middle of a line, the second is the answer to
/// `sinceTime=<last timestamp, truncated to the second>` and overlaps the first.
/// (kwok serves no container logs, so the follower cannot be tested live here.)
#[test]
fn follower_resumes_without_duplicates() {
    let first = fixture("follow-1.txt");
    let second = fixture("follow-2.txt");
    assert!(!first.ends_with('\n'), "the first stream breaks mid-line");
    for chunk in [1usize, 3, 7, 64, 4096] {
        let s = LogsSpec::default();
        let mut f = FollowState::new(&s, "val_loss").unwrap();
        let mut got = Vec::new();
        for c in first.as_bytes().chunks(chunk) {
            got.extend(f.feed(c));
        }
        let since = f.broken().expect("a sinceTime to resume from");
        assert_eq!(since.to_string(), "2024-03-05T10:00:01Z");
        for c in second.as_bytes().chunks(chunk) {
            got.extend(f.feed(c));
        }
        assert_eq!(
            got,
            vec![(0, 0.9), (1, 0.8), (2, 0.7), (3, 0.6), (4, 0.5)],
            "chunk {chunk}"
        );
    }
    // Without the timestamps filter the overlap would have counted 0.8 and 0.7 twice: check
    // that the plain parser indeed would.
    let mut p = LineParser::new(&LogsSpec::default(), "val_loss").unwrap();
    let naive: Vec<_> = first
        .lines()
        .chain(second.lines())
        .filter_map(|l| p.feed(l.split_once(' ').map_or(l, |x| x.1)))
        .collect();
    assert!(naive.len() > 5);
}

#[test]
fn follower_final_line_without_newline() {
    let mut f = FollowState::new(&LogsSpec::default(), "val_loss").unwrap();
    assert_eq!(
        f.feed(b"2024-03-05T10:00:00Z val_loss=0.9\n2024-03-05T10:00:01Z val_loss=0.8"),
        vec![(0, 0.9)]
    );
    assert_eq!(f.finished(), Some((1, 0.8)));
}
