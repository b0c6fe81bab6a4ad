//! The write paths against a mock API server: the exact request sequence of a report (one
//! write in the steady state; a conflict costs one GET; a prune deletes the Job and publishes
//! an Event; a vanished Trial stops everything) and of a Study's apply step.
//! The real control plane is the end-to-end proof (`tests/operator.rs`); these pin down what
//! each path asks of the API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::observe::{ObserveError, observe};
use super::view::View;
use crate::crd::{Point, Study, Trial, TrialPhase, TrialSpec, TrialStatus};

/// One answer of the mock: status code and body (`Echo` answers a PATCH with its own body,
/// as the API would, with the next resourceVersion).
enum Answer {
    Echo,
    Json(u16, Value),
}

/// A mock API server answering requests in order; records "METHOD path" of each.
struct Mock {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Mock {
    fn new(answers: Vec<Answer>) -> (Client, Mock) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let rv = Arc::new(Mutex::new(100u64));
        let s = seen.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let seen = s.clone();
            let answers = answers.clone();
            let rv = rv.clone();
            async move {
                let line = format!("{} {}", req.method(), req.uri().path());
                seen.lock().unwrap().push(line);
                let body = axum::body::to_bytes(axum::body::Body::new(req.into_body()), 1 << 24)
                    .await
                    .unwrap_or_default();
                let answer = answers.lock().unwrap().pop_front();
                let (code, out) = match answer {
                    Some(Answer::Echo) => {
                        let mut v: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                        let mut n = rv.lock().unwrap();
                        *n += 1;
                        v["metadata"]["resourceVersion"] = json!(n.to_string());
                        v["metadata"]["uid"] = json!("uid-1");
                        v["metadata"]["namespace"] = json!("ns");
                        v["spec"] = json!({"study": "s", "number": 1});
                        v["metadata"]["labels"] = json!({"lopper.dev/study": "s"});
                        (200, v)
                    }
                    Some(Answer::Json(c, v)) => (c, v),
                    None => (500, status(500, "unexpected request")),
                };
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(StatusCode::from_u16(code).unwrap())
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&out).unwrap()))
                        .unwrap(),
                )
            }
        });
        (Client::new(svc, "ns"), Mock { seen })
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
           "reason": reason, "message": reason})
}

fn study() -> Study {
    serde_json::from_value(json!({
        "apiVersion": "lopper.dev/v1alpha1", "kind": "Study",
        "metadata": {"name": "s", "namespace": "ns", "uid": "study-uid", "resourceVersion": "3"},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "x", "float": {"low": 0.0, "high": 1.0}}],
            "pruner": {"median": {"startupTrials": 1}},
            "maxTrials": 4,
            "metrics": {"push": {}},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "b"}]}}}}
        }
    }))
    .unwrap()
}

fn trial(n: u64, phase: TrialPhase, points: &[(i64, f64)]) -> Trial {
    let mut t = Trial::new(
        &format!("s-{n}"),
        TrialSpec {
            study: "s".into(),
            number: n,
            params: Default::default(),
            invalid: None,
        },
    );
    t.metadata.namespace = Some("ns".into());
    t.metadata.uid = Some(format!("uid-{n}"));
    t.metadata.labels = Some([(crate::crd::STUDY_LABEL.to_string(), "s".to_string())].into());
    t.metadata.resource_version = Some("5".into());
    t.status = Some(TrialStatus {
        phase: Some(phase),
        job: Some(format!("s-{n}")),
        intermediate: points
            .iter()
            .map(|&(step, v)| Point {
                step,
                value: Some(v),
            })
            .collect(),
        value: (phase == TrialPhase::Completed).then(|| points.last().unwrap().1),
        ..Default::default()
    });
    t
}

fn view(client: Client) -> Arc<View> {
    View::from_objects(
        client,
        "ns",
        vec![study()],
        vec![
            trial(0, TrialPhase::Completed, &[(0, 0.5), (1, 0.4), (2, 0.3)]),
            trial(1, TrialPhase::Running, &[]),
        ],
        Vec::new(),
    )
}

const PATCH_STATUS: &str = "PATCH /apis/lopper.dev/v1alpha1/namespaces/ns/trials/s-1/status";
const GET_TRIAL: &str = "GET /apis/lopper.dev/v1alpha1/namespaces/ns/trials/s-1";

#[tokio::test]
async fn a_report_is_one_write_and_the_next_one_builds_on_it() {
    let (client, mock) = Mock::new(vec![Answer::Echo, Answer::Echo]);
    let v = view(client);
    let out = observe(&v, "ns", "s-1", &[(0, 0.45)]).await.unwrap();
    assert_eq!((out.recorded, out.prune), (1, false));
    let out = observe(&v, "ns", "s-1", &[(1, 0.35)]).await.unwrap();
    assert_eq!((out.recorded, out.prune), (1, false));
    assert_eq!(mock.seen(), vec![PATCH_STATUS, PATCH_STATUS]);
    // The second write carried the first's points (the view holds our last write).
    let t = v.trial("ns", "s-1").unwrap();
    assert_eq!(t.status.as_ref().unwrap().intermediate.len(), 2);
    // A repeated step changes nothing and costs nothing.
    let out = observe(&v, "ns", "s-1", &[(1, 0.1)]).await.unwrap();
    assert_eq!(out.recorded, 0);
    assert_eq!(mock.seen().len(), 2);
}

#[tokio::test]
async fn a_conflict_costs_one_get_then_the_write_is_retried() {
    let mut fresh = serde_json::to_value(trial(1, TrialPhase::Running, &[(0, 0.45)])).unwrap();
    fresh["metadata"]["resourceVersion"] = json!("9");
    let (client, mock) = Mock::new(vec![
        Answer::Json(409, status(409, "Conflict")),
        Answer::Json(200, fresh),
        Answer::Echo,
    ]);
    let v = view(client);
    let out = observe(&v, "ns", "s-1", &[(1, 0.35)]).await.unwrap();
    assert_eq!(out.recorded, 1);
    assert_eq!(mock.seen(), vec![PATCH_STATUS, GET_TRIAL, PATCH_STATUS]);
    // The retry kept the other writer's point.
    let t = v.trial("ns", "s-1").unwrap();
    let steps: Vec<i64> = t
        .status
        .as_ref()
        .unwrap()
        .intermediate
        .iter()
        .map(|p| p.step)
        .collect();
    assert_eq!(steps, vec![0, 1]);
}

#[tokio::test]
async fn a_prune_writes_once_then_deletes_the_job_and_publishes_an_event() {
    let (client, mock) = Mock::new(vec![
        Answer::Echo,
        Answer::Json(200, status(200, "Success")),
        Answer::Json(201, json!({})),
    ]);
    let v = view(client);
    let out = observe(&v, "ns", "s-1", &[(0, 0.9)]).await.unwrap();
    assert!(
        out.prune,
        "0.9 is worse than the completed trial's 0.5 at step 0"
    );
    let seen = mock.seen();
    assert_eq!(seen[0], PATCH_STATUS);
    assert_eq!(seen[1], "DELETE /apis/batch/v1/namespaces/ns/jobs/s-1");
    assert!(
        seen[2].starts_with("POST /apis/events.k8s.io/v1/namespaces/ns/events"),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 3);
    assert_eq!(
        v.trial("ns", "s-1").unwrap().phase(),
        TrialPhase::Pruned,
        "the Pruned phase went out in the one status write"
    );
}

#[tokio::test]
async fn a_vanished_trial_stops_at_the_first_404() {
    let (client, mock) = Mock::new(vec![Answer::Json(404, status(404, "NotFound"))]);
    let v = view(client);
    let r = observe(&v, "ns", "s-1", &[(0, 0.4)]).await;
    assert!(matches!(r, Err(ObserveError::NotFound(_))), "{r:?}");
    assert_eq!(mock.seen(), vec![PATCH_STATUS]);
    // Unknown trials and unwatched namespaces cost no request at all.
    assert!(matches!(
        observe(&v, "ns", "nope", &[(0, 0.4)]).await,
        Err(ObserveError::NotFound(_))
    ));
    assert!(matches!(
        observe(&v, "other", "s-1", &[(0, 0.4)]).await,
        Err(ObserveError::NotFound(_))
    ));
    assert_eq!(mock.seen().len(), 1);
}

#[tokio::test]
async fn study_apply_creates_trials_treats_409_as_done_then_applies_status() {
    let (client, mock) = Mock::new(vec![
        Answer::Json(
            201,
            serde_json::to_value(trial(2, TrialPhase::Pending, &[])).unwrap(),
        ),
        Answer::Json(409, status(409, "AlreadyExists")),
        Answer::Json(200, serde_json::to_value(study()).unwrap()),
    ]);
    let v = view(client);
    let ctx = super::Context::new(v, None);
    let s = study();
    let p = super::study::StudyPlan {
        create: vec![(2, Default::default()), (3, Default::default())],
        stop: Vec::new(),
        stop_message: String::new(),
        stop_pruned: false,
        status: Some(Default::default()),
        invalid_event: None,
        phase: crate::crd::StudyPhase::Running,
        running: 2,
    };
    super::study::apply(&ctx, &s, &p).await.unwrap();
    assert_eq!(
        mock.seen(),
        vec![
            "POST /apis/lopper.dev/v1alpha1/namespaces/ns/trials",
            "POST /apis/lopper.dev/v1alpha1/namespaces/ns/trials",
            "PATCH /apis/lopper.dev/v1alpha1/namespaces/ns/studies/s/status",
        ]
    );
}
