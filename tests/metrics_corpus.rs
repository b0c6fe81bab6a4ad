//! The `file` and `tensorboard` parsers against files written by real writers
//! (`tests/fixtures/metrics/gen_corpus.py`: tensorboardX event files with `simple_value`,
//! torch-style and Keras-style tensor scalars, a restarted writer, a damaged record, a cut
//! file; Lightning-style CSV; JSON lines), read as the sidecar reads them: the points it
//! would post, and every bad record reported with its file and offset, then skipped.
//! Each corpus file is also fed in small appends, as a trainer writes it while followed.

use std::path::{Path, PathBuf};

use lopper::metrics::MetricsSpec;
use lopper::sidecar::Follower;
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/corpus")
}

fn points(v: &Value) -> Vec<(i64, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let value = match &p[1] {
                Value::String(s) if s == "NaN" => f64::NAN,
                x => x.as_f64().unwrap(),
            };
            (p[0].as_i64().unwrap(), value)
        })
        .collect()
}

/// Equal steps, and values equal to within 2 ulps (serde_json's default float parsing may
/// round the last bit of what Python's `repr` wrote; a float32/float64 mix-up is ~1e-8 off).
fn same(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    let close = |x: f64, y: f64| {
        (x.is_nan() && y.is_nan()) || (x - y).abs() <= 4.0 * f64::EPSILON * y.abs().max(1e-300)
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && close(x.1, y.1))
}

/// The case's source, with its path made absolute inside `root`.
fn source(case: &Value, root: &Path) -> (MetricsSpec, PathBuf) {
    let mut src = case["source"].clone();
    let (key, field) = if src.get("file").is_some() {
        ("file", "path")
    } else {
        ("tensorboard", "dir")
    };
    let rel = src[key][field].as_str().unwrap().to_string();
    let abs = root.join(&rel);
    src[key][field] = Value::String(abs.display().to_string());
    let spec: MetricsSpec = serde_json::from_value(src).unwrap();
    spec.validate().unwrap();
    (spec, abs)
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(corpus().join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["metric"], "val_loss");
    v["cases"].as_array().unwrap().clone()
}

#[test]
fn corpus_read_whole() {
    let cases = cases();
    assert!(cases.len() >= 9);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let (spec, path) = source(case, &corpus());
        let mut f = Follower::new(&spec, "val_loss", &path).unwrap();
        let mut got = f.poll();
        let last = f.finish();
        got.points.extend(last.points);
        got.errors.extend(last.errors);
        let want = points(&case["points"]);
        assert!(
            same(&got.points, &want),
            "{name}: got {:?}\nwant {want:?}",
            got.points
        );
        let offsets: Vec<u64> = case["errorOffsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap())
            .collect();
        assert_eq!(got.errors.len(), offsets.len(), "{name}: {:?}", got.errors);
        for (e, o) in got.errors.iter().zip(&offsets) {
            assert!(
                e.contains(&format!("at offset {o}:")) && e.contains("tfevents"),
                "{name}: error names file and offset {o}: {e}"
            );
        }
    }
}

/// Copies each case's files into a folder the way a writer appends them (chunks of 7 bytes,
/// polled in between): the points are the same, and a record still being written is never
/// taken for a corrupt one.
#[test]
fn corpus_followed_while_written() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, case) in cases().iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let (_, src_path) = source(case, &corpus());
        let root = tmp.path().join(format!("case{i}"));
        let (spec, dst_path) = source(case, &root);
        let files: Vec<(PathBuf, PathBuf)> = if src_path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(&src_path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v.into_iter()
                .map(|p| (p.clone(), dst_path.join(p.file_name().unwrap())))
                .collect()
        } else {
            vec![(src_path.clone(), dst_path.clone())]
        };
        std::fs::create_dir_all(if src_path.is_dir() {
            &dst_path
        } else {
            dst_path.parent().unwrap()
        })
        .unwrap();
        let mut f = Follower::new(&spec, "val_loss", &dst_path).unwrap();
        let mut got = Vec::new();
        let mut errors = Vec::new();
        for (from, to) in files {
            let bytes = std::fs::read(&from).unwrap();
            let mut out = std::fs::File::create(&to).unwrap();
            for chunk in bytes.chunks(7) {
                use std::io::Write;
                out.write_all(chunk).unwrap();
                out.flush().unwrap();
                let p = f.poll();
                got.extend(p.points);
                errors.extend(p.errors);
            }
        }
        let p = f.finish();
        got.extend(p.points);
        errors.extend(p.errors);
        assert!(same(&got, &points(&case["points"])), "{name}: got {got:?}");
        assert_eq!(
            errors.len(),
            case["errorOffsets"].as_array().unwrap().len(),
            "{name}: {errors:?}"
        );
    }
}
