//! The Optuna-generated conformance cases run through the operator's own decision path:
//! every report goes through `lopper::controller::observe` (the function the push endpoint,
//! the log followers and the Prometheus poller call), with the study's in-memory book, the
//! curve chunks long curves are sealed into, and the status write, against an API that
//! stores what it is sent. Trials run one at a time (parallelism 1), as in the oracle, and
//! each outcome must equal Optuna's: state, pruning step and value.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{Request, Response};
use kube::Client;
use kube::client::Body;
use lopper::controller::{ObserveError, View, observe};
use lopper::crd::{Study, Trial, TrialPhase, TrialSpec, TrialStatus};
use lopper::engine::replay::ReplayInput;
use serde_json::{Value, json};

/// An API server that stores what it is sent (creates, status patches; the next
/// resourceVersion each time) and counts the requests by method and resource.
fn storing_api(counts: Arc<Mutex<BTreeMap<String, u64>>>) -> Client {
    let rv = Arc::new(Mutex::new(10u64));
    let objects: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let svc = tower::service_fn(move |req: Request<Body>| {
        let counts = counts.clone();
        let rv = rv.clone();
        let objects = objects.clone();
        async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let at = parts.iter().position(|s| *s == "namespaces").unwrap_or(0);
            let resource = parts.get(at + 2).copied().unwrap_or("?").to_string();
            let status = path.ends_with("/status");
            *counts
                .lock()
                .unwrap()
                .entry(format!(
                    "{method} {resource}{}",
                    if status { "/status" } else { "" }
                ))
                .or_default() += 1;
            let body = axum::body::to_bytes(axum::body::Body::new(req.into_body()), 1 << 26)
                .await
                .unwrap_or_default();
            let sent: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            let next = || {
                let mut n = rv.lock().unwrap();
                *n += 1;
                n.to_string()
            };
            let (code, out) = match method.as_str() {
                "POST" => {
                    let mut o = sent.clone();
                    let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                    o["metadata"]["resourceVersion"] = json!(next());
                    objects
                        .lock()
                        .unwrap()
                        .insert(format!("{path}/{name}"), o.clone());
                    (201, o)
                }
                "PATCH" if status => {
                    let key = path.trim_end_matches("/status").to_string();
                    match objects.lock().unwrap().get_mut(&key) {
                        Some(o) => {
                            o["status"] = sent["status"].clone();
                            o["metadata"]["resourceVersion"] = json!(next());
                            (200, o.clone())
                        }
                        None => (
                            404,
                            json!({"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found", "status": "Failure", "apiVersion": "v1"}),
                        ),
                    }
                }
                _ => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
            };
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap(),
            )
        }
    });
    Client::new(svc, "ns")
}

fn study(input: &Value) -> Study {
    let direction = input["direction"].as_str().unwrap_or("minimize");
    serde_json::from_value(json!({
        "apiVersion": "lopper.dev/v1alpha1", "kind": "Study",
        "metadata": {"name": input["study"].as_str().unwrap_or("replay"), "namespace": "ns",
                     "uid": "study-uid", "resourceVersion": "1"},
        "spec": {
            "objective": {"metric": "v", "direction": direction},
            "parameters": [{"name": "x", "float": {"low": 0.0, "high": 1.0}}],
            "pruner": input["pruner"].clone(),
            "maxTrials": 100000,
            "metrics": {"push": {}},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "b"}]}}}}
        }
    }))
    .expect("a Study from the case's pruner")
}

/// Outcome of one trial: state, pruning step, value.
type Outcome = (&'static str, Option<i64>, Option<f64>);

/// Runs one case through `observe`; returns each trial's outcome.
async fn run_case(raw: &Value, counts: Arc<Mutex<BTreeMap<String, u64>>>) -> Vec<Outcome> {
    let input = ReplayInput::from_value(raw).expect("case input");
    let s = study(raw);
    let name = s.metadata.name.clone().unwrap();
    let view = View::from_objects(storing_api(counts), "ns", vec![s], Vec::new(), Vec::new());
    let mut out = Vec::new();
    for (i, curve) in input.trials.iter().enumerate() {
        let tn = format!("{name}-{i}");
        let mut t = Trial::new(
            &tn,
            TrialSpec {
                study: name.clone(),
                number: i as u64,
                params: Default::default(),
                invalid: None,
            },
        );
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some(format!("uid-{i}"));
        t.metadata.labels = Some([(lopper::crd::STUDY_LABEL.to_string(), name.clone())].into());
        t.status = Some(TrialStatus {
            phase: Some(TrialPhase::Running),
            job: Some(tn.clone()),
            ..Default::default()
        });
        let api: kube::Api<Trial> = kube::Api::namespaced(view.client.clone(), "ns");
        let created = api
            .create(&Default::default(), &t)
            .await
            .expect("the storing API takes the Trial");
        view.wrote(created);
        let mut pruned = None;
        for (step, v) in curve.points() {
            match observe(&view, "ns", &tn, &[(step, v)]).await {
                Ok(o) if o.prune => {
                    pruned = Some(step);
                    break;
                }
                Ok(_) => {}
                Err(ObserveError::Finished { .. }) => break,
                Err(e) => panic!("{tn} step {step}: {e}"),
            }
        }
        let now = view.trial("ns", &tn).expect("trial in the view");
        let st = now.status.clone().unwrap_or_default();
        if pruned.is_some() {
            out.push(("pruned", st.pruned_at_step, st.value));
            continue;
        }
        // The Job succeeded: the Trial completes with its last value (a NaN one fails, as
        // Optuna fails a trial told NaN); the Trial reconciler's rule.
        let mut done = (*now).clone();
        let last = curve.values.last().copied().filter(|v| !v.is_nan());
        let s2 = done.status.get_or_insert_with(Default::default);
        match last {
            Some(v) => {
                s2.phase = Some(TrialPhase::Completed);
                s2.value = Some(v);
                out.push(("complete", None, Some(v)));
            }
            None => {
                s2.phase = Some(TrialPhase::Failed);
                out.push(("failed", None, None));
            }
        }
        done.metadata.resource_version = Some("999999999".into());
        view.wrote(done);
    }
    out
}

fn expected(e: &Value) -> Outcome {
    let state = match e["state"].as_str() {
        Some("complete") => "complete",
        Some("pruned") => "pruned",
        Some("failed") => "failed",
        other => panic!("unexpected state {other:?}"),
    };
    let value = match &e["value"] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "inf" => Some(f64::INFINITY),
        Value::String(s) if s == "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    (state, e["prunedAtStep"].as_i64(), value)
}

fn check(path: &str, only: Option<usize>) {
    let text = std::fs::read_to_string(support::repo_root().join(path)).expect("cases file");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let cases = doc["cases"].as_array().expect("cases");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let mut failures = Vec::new();
    let mut trials = 0;
    for case in cases.iter().take(only.unwrap_or(usize::MAX)) {
        let name = case["name"].as_str().unwrap_or("?");
        let got = rt.block_on(run_case(&case["input"], counts.clone()));
        for (i, (exp, got)) in case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&got)
            .enumerate()
        {
            trials += 1;
            if expected(exp) != *got {
                failures.push(format!(
                    "{name} trial {i}: expected {:?}, got {got:?}",
                    expected(exp)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {trials} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(trials > 0, "no trials checked in {path}");
    let c = counts.lock().unwrap();
    eprintln!("{path}: {trials} trials identical through observe; requests {c:?}");
    assert!(
        c.keys()
            .all(|k| !k.starts_with("GET") && !k.contains("LIST")),
        "the report path read the API: {c:?}"
    );
}

#[test]
fn committed_cases_decide_as_optuna_through_the_operator_path() {
    check("tests/oracle/cases.json", None);
}

/// The long cases (≥ 5,000 steps, decisions after step 1,000, curves sealed into chunks)
/// through the same path. Each case runs up to its first trial pruned after step 1,000
/// (trials run one at a time, so a prefix decides exactly as the whole case). Every report is
/// a status write through the (mock) API, slow in a debug build, so by default only the cases
/// whose prefix has at most 20,000 reports run here (successive halving, threshold, both
/// Wilcoxon cases: sealing, chunks and rung values through the API); the rest are left to
/// `tests/pruners_long.rs` (the engine alone). `LOPPER_LONG_OPERATOR_ALL=1` runs them all.
#[test]
fn long_cases_decide_as_optuna_through_the_operator_path() {
    let cases = support::long_curves::load_long_cases();
    let started = std::time::Instant::now();
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let handles: Vec<_> = cases
        .into_iter()
        .filter_map(|case| {
            let late = case.expected.iter().position(|e| {
                e.state == "pruned"
                    && e.pruned_at_step
                        .is_some_and(|s| s > support::long_curves::LATE_STEP)
            })?;
            let reports: usize = case.trials[..=late].iter().map(|t| t.steps.len()).sum();
            if reports > 20_000 && std::env::var_os("LOPPER_LONG_OPERATOR_ALL").is_none() {
                return None;
            }
            let mut input = case.input_json();
            input["trials"].as_array_mut().unwrap().truncate(late + 1);
            let counts = counts.clone();
            Some(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let got = rt.block_on(run_case(&input, counts));
                let mut failures = Vec::new();
                for (e, g) in case.expected.iter().zip(&got) {
                    let want = (e.state.as_str(), e.pruned_at_step, e.value);
                    if (want.0, want.1, want.2.map(f64::to_bits))
                        != (g.0, g.1, g.2.map(f64::to_bits))
                    {
                        failures.push(format!(
                            "{} trial {}: expected {want:?}, got {g:?}",
                            case.name, e.number
                        ));
                    }
                }
                (got.len(), failures)
            }))
        })
        .collect();
    let mut trials = 0;
    let mut failures = Vec::new();
    for h in handles {
        let (n, f) = h.join().unwrap();
        trials += n;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {trials} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(trials > 0);
    let c = counts.lock().unwrap();
    eprintln!(
        "long cases: {trials} trials identical through observe in {:.0} s; requests {c:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        c.get("POST curvechunks").copied().unwrap_or(0) > 0,
        "long curves were sealed into chunks: {c:?}"
    );
}
