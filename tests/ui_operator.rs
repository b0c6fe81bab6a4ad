//! The operator's dashboard (`/ui/`, the router `lopper controller` mounts) on the local control
//! plane, in a real browser: the pages show what the Study and Trial objects hold, and a running
//! trial's curve gains a point when a report arrives (pushed over the events stream from the
//! view, no reload).

mod browser;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use browser::{Browser, screenshot_dir};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use lopper::controller::{Config, View, observe};
use lopper::crd::{Study, Trial, TrialPhase};
use lopper::ui::auth::Auth;
use lopper::ui::live::ViewSource;
use serde_json::Value;
use support::{TestNamespace, wait_for};

const STUDY: &str = r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {name: board}
spec:
  objective: {metric: val_loss, direction: minimize}
  parameters:
    - name: lr
      float: {low: 0.0001, high: 0.5, log: true}
    - name: optimizer
      categorical: {choices: [adam, sgd]}
  sampler: {random: {seed: 5}}
  maxTrials: 3
  parallelism: 3
  metrics: {push: {}}
  trialTemplate:
    gpus: 1
    metadata:
      annotations: {lopper.dev/fake-exit-after: 600s}
    spec:
      template:
        spec:
          containers:
            - name: trainer
              image: trainer:fake
"#;

/// Runs `f` (browser work, synchronous) without stalling the runtime's other tasks.
fn sync<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn text(b: &mut Browser, selector: &str) -> Value {
    b.eval(&format!(
        "(e => e ? e.textContent : null)(document.querySelector({}))",
        serde_json::to_string(selector).unwrap()
    ))
}

fn open(b: &mut Browser, url: &str) {
    b.goto("about:blank");
    b.goto(url);
    b.wait_for(
        "Number(document.body.dataset.ready || 0) > 0",
        Duration::from_secs(20),
    );
}

async fn trials(client: &Client, ns: &str) -> Vec<Trial> {
    let mut t = Api::<Trial>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .expect("list trials")
        .items;
    t.sort_by_key(|t| t.spec.number);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_dashboard_shows_the_objects_and_live_reports() {
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, "ui-op").await;
    let operator = tokio::spawn(lopper::controller::run(
        client.clone(),
        Config {
            namespaces: vec![ns.name.clone()],
            concurrency: 4,
            ..Default::default()
        },
    ));
    // The dashboard as `lopper controller` serves it: its own view of the namespace.
    let view = View::start(client.clone(), std::slice::from_ref(&ns.name));
    assert!(view.ready(Duration::from_secs(60)).await, "view synced");
    let source = ViewSource::start(view.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ui/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, lopper::ui::server::router(source, Auth::None))
            .await
            .unwrap()
    });

    let study: Study = serde_yaml::from_str(STUDY).unwrap();
    Api::<Study>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &study)
        .await
        .expect("create study");
    // Three running trials, each with three reports.
    let running = wait_for(Duration::from_secs(60), || {
        let (client, ns) = (client.clone(), ns.name.clone());
        async move {
            let t = trials(&client, &ns).await;
            (t.len() == 3 && t.iter().all(|t| t.phase() == TrialPhase::Running)).then_some(t)
        }
    })
    .await
    .expect("three running trials");
    for t in &running {
        for step in 0..3 {
            let v = 1.0 / (step as f64 + 1.0) + t.spec.number as f64 * 0.1;
            observe(&view, &ns.name, &t.name_any(), &[(step, v)])
                .await
                .expect("report");
        }
    }
    let api_trials = wait_for(Duration::from_secs(30), || {
        let (client, ns) = (client.clone(), ns.name.clone());
        async move {
            let t = trials(&client, &ns).await;
            t.iter()
                .all(|t| t.status.as_ref().is_some_and(|s| s.intermediate.len() == 3))
                .then_some(t)
        }
    })
    .await
    .expect("reports recorded");
    let api_study = Api::<Study>::namespaced(client.clone(), &ns.name)
        .get("board")
        .await
        .unwrap();
    let st = api_study.status.clone().unwrap_or_default();

    let mut b = sync(|| Browser::launch(1400, 1000));
    let shots = screenshot_dir();
    let row = format!("#studies tr[data-study='{}/board']", ns.name);
    sync(|| {
        open(&mut b, &url);
        assert_eq!(
            text(&mut b, &format!("{row} [data-field=phase]")),
            st.phase.map(|p| p.as_str()).unwrap_or_default()
        );
        let counts = st.trials.clone().unwrap_or_default();
        assert_eq!(
            text(&mut b, &format!("{row} [data-field=progress]")),
            format!("{}/3", counts.completed)
        );
        assert_eq!(
            text(&mut b, &format!("{row} [data-field=running]")),
            counts.running.to_string()
        );
        let hours = |v: Option<f64>| v.map_or("—".to_string(), |h| format!("{:.2}", h / 3600.0));
        let gpu = st.gpu_seconds.clone();
        assert_eq!(
            text(&mut b, &format!("{row} [data-field=gpuHours]")),
            hours(gpu.as_ref().map(|g| g.used))
        );
        assert_eq!(
            text(&mut b, &format!("{row} [data-field=gpuHoursSaved]")),
            hours(gpu.as_ref().map(|g| g.saved_by_pruning))
        );
    });

    // The study page: one row per Trial object, with its phase, last step and parameters.
    sync(|| {
        open(&mut b, &format!("{url}#/study/{}/board", ns.name));
        assert_eq!(
            b.eval("document.querySelectorAll('#trials tbody tr').length"),
            3
        );
        for t in &api_trials {
            let tr = format!("#trials tr[data-trial='{}']", t.spec.number);
            let s = t.status.clone().unwrap();
            assert_eq!(
                text(&mut b, &format!("{tr} [data-field=state]")),
                t.phase().as_str()
            );
            assert_eq!(
                text(&mut b, &format!("{tr} [data-field=step]")),
                s.last_step.unwrap().to_string()
            );
            assert_eq!(
                text(&mut b, &format!("{tr} [data-param=optimizer]")),
                t.spec.params["optimizer"].to_string()
            );
        }
        b.screenshot(&shots.join("operator-study.png"));
    });

    // A trial page: its parameters, its curve, its Job.
    let first = api_trials[0].clone();
    let fs = first.status.clone().unwrap();
    // An Event about the trial (as the operator records them) shows on its page.
    let event: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{}.ui-test", first.name_any()), "namespace": ns.name},
        "involvedObject": {"apiVersion": "lopper.dev/v1alpha1", "kind": "Trial",
                           "name": first.name_any(), "namespace": ns.name},
        "reason": "UiTest", "message": "an event the dashboard shows", "type": "Normal",
        "count": 1
    }))
    .unwrap();
    Api::<Event>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");
    sync(|| {
        open(
            &mut b,
            &format!("{url}#/trial/{}/board/{}", ns.name, first.spec.number),
        );
        assert_eq!(text(&mut b, "#points"), "3 points");
        let events = text(&mut b, "#events")
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            events.contains("UiTest") && events.contains("an event the dashboard shows"),
            "{events}"
        );
        assert_eq!(
            text(&mut b, "#job [data-field=name]"),
            fs.job.clone().unwrap()
        );
        assert_eq!(
            text(&mut b, "#params tr[data-param=optimizer] .value"),
            first.spec.params["optimizer"].to_string()
        );
    });

    // A report arrives: the open page gains the point without reloading.
    let sent = Instant::now();
    observe(&view, &ns.name, &first.name_any(), &[(3, 0.05)])
        .await
        .expect("report");
    sync(|| {
        b.wait_for(
            "document.getElementById('points').textContent === '4 points'",
            Duration::from_secs(10),
        );
        assert_eq!(text(&mut b, "[data-field=step]"), "3");
        assert_eq!(text(&mut b, "[data-field=state]"), "Running");
        assert_eq!(b.eval("document.body.dataset.ready"), "1", "no reload");
        b.screenshot(&shots.join("operator-trial.png"));
    });
    eprintln!("report → point on the page: {:?}", sent.elapsed());

    drop(b);
    server.abort();
    operator.abort();
    ns.delete(&client).await;
    let _: Arc<View> = view;
}

/// `helm template` of the chart in `charts/lopper` (the pinned helm of `e2e/cluster.sh`).
fn helm_template(namespace: &str, values: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let (ok, out, err) = support::run(
        std::process::Command::new(support::bin("helm"))
            .args(["template", "lopper"])
            .arg(support::repo_root().join("charts/lopper"))
            .args(["--namespace", namespace, "-f"])
            .arg(&file)
            .args(extra),
    );
    assert!(ok, "helm template with {values:?}: {err}");
    out
}

fn kubectl_apply(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    let (ok, out, err) = support::run(
        support::kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(&file),
    );
    assert!(ok, "kubectl apply: {out}{err}");
}

/// A client authorised as `user` (impersonation), as RBAC authorises the operator's pod.
async fn client_as(user: &str) -> Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(support::kubeconfig_path()).expect("read kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).expect("client")
}

/// The chart's `ui.auth.tokenReview: true`, end to end: the operator gets `--ui-auth=token-review`
/// and, with only the RBAC the chart grants its ServiceAccount, answers 401 without a token or
/// with one whose user may not list Studies, 200 to a ServiceAccount token that may (by header,
/// or once by `?token=`, then by the cookie it sets); and no response carries a Secret's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_review_lets_only_study_readers_in() {
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, "ui-auth").await;

    // The chart: off by default (no flag, no extra RBAC); on, both.
    let fullname = format!("lopper-{}", ns.name);
    let off = format!("fullnameOverride: {fullname}\n");
    let on = format!("{off}ui: {{enabled: true, auth: {{tokenReview: true}}}}\n");
    let default = helm_template(&ns.name, &off, &[]);
    assert!(!default.contains("--ui-auth") && !default.contains("tokenreviews"));
    let deployment = helm_template(&ns.name, &on, &["--show-only", "templates/deployment.yaml"]);
    assert!(
        deployment.contains("- --ui-auth=token-review"),
        "{deployment}"
    );
    kubectl_apply(&helm_template(
        &ns.name,
        &on,
        &[
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/ui-rbac.yaml",
        ],
    ));
    let operator_user = format!("system:serviceaccount:{}:{fullname}", ns.name);

    let role = format!("{}-study-reader", ns.name);
    kubectl_apply(&format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: nobody, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules: [{{apiGroups: [lopper.dev], resources: [studies], verbs: [list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {role}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: trainer-credentials, namespace: {ns}}}
stringData: {{API_KEY: {SECRET_VALUE}}}
"#,
        ns = ns.name
    ));
    let token = |sa: &str| {
        let (ok, out, err) =
            support::run(support::kubectl().args(["create", "token", sa, "-n", &ns.name]));
        assert!(ok, "{err}");
        out.trim().to_string()
    };
    let (reader, nobody) = (token("reader"), token("nobody"));

    // A study whose trials take the Secret in their environment (by reference).
    let operator = tokio::spawn(lopper::controller::run(
        client.clone(),
        Config {
            namespaces: vec![ns.name.clone()],
            concurrency: 4,
            ..Default::default()
        },
    ));
    let mut study: Study = serde_yaml::from_str(STUDY).unwrap();
    study.spec.max_trials = Some(1);
    study.spec.trial_template.spec.as_mut().unwrap()["template"]["spec"]["containers"][0]["env"] = serde_json::json!([{
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "trainer-credentials", "key": "API_KEY"}}
    }]);
    Api::<Study>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &study)
        .await
        .expect("create study");
    let view = View::start(client.clone(), std::slice::from_ref(&ns.name));
    assert!(view.ready(Duration::from_secs(60)).await, "view synced");
    let trial = wait_for(Duration::from_secs(60), || {
        let (client, ns) = (client.clone(), ns.name.clone());
        async move {
            trials(&client, &ns)
                .await
                .into_iter()
                .find(|t| t.phase() == TrialPhase::Running)
        }
    })
    .await
    .expect("a running trial");
    observe(&view, &ns.name, &trial.name_any(), &[(0, 0.5)])
        .await
        .expect("report");

    // The dashboard as `lopper controller --ui-auth=token-review` serves it, its reviews made
    // with the chart's RBAC only.
    let auth = Auth::token_review(client_as(&operator_user).await);
    let view_for_reports = view.clone();
    let router = lopper::ui::server::router(ViewSource::start(view), auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();
    let status =
        |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };
    let studies = format!("{base}/ui/api/studies");

    assert_eq!(status(http.get(&studies)).await, 401, "no token");
    assert_eq!(
        status(http.get(format!("{base}/ui/"))).await,
        401,
        "no token, the page"
    );
    assert_eq!(
        status(http.get(&studies).bearer_auth(&nobody)).await,
        401,
        "not a reader"
    );
    assert_eq!(
        status(http.get(&studies).bearer_auth("not-a-token")).await,
        401,
        "no such token"
    );
    assert_eq!(
        status(http.get(&studies).bearer_auth(&reader)).await,
        200,
        "a reader"
    );
    let resp = http
        .get(format!("{base}/ui/?token={reader}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the token is kept as a cookie")
        .to_string();
    assert_eq!(
        status(http.get(&studies).header("cookie", &cookie)).await,
        200,
        "by cookie"
    );

    // Every route a reader can reach, with the trial in it: no Secret value, plain or base64.
    let study_path = format!("{base}/ui/api/studies/{}/board", ns.name);
    let encoded = base64_of(SECRET_VALUE);
    for url in [
        format!("{base}/ui/"),
        format!("{base}/ui/app.js"),
        studies.clone(),
        study_path.clone(),
        format!("{study_path}/curves"),
        format!("{study_path}/trials/{}", trial.spec.number),
    ] {
        let resp = http.get(&url).bearer_auth(&reader).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let body = resp.bytes().await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains(SECRET_VALUE) && !text.contains(&encoded),
            "{url} carries the Secret's value"
        );
    }
    // The events stream too, while a report is pushed through it.
    let mut events = http
        .get(format!("{base}/ui/api/events"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    observe(&view_for_reports, &ns.name, &trial.name_any(), &[(1, 0.25)])
        .await
        .expect("report");
    let mut streamed = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !streamed.contains("event: trial") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), events.chunk()).await {
            Ok(Ok(Some(c))) => streamed.push_str(&String::from_utf8_lossy(&c)),
            _ => break,
        }
    }
    assert!(streamed.contains("event: trial"), "{streamed}");
    assert!(
        !streamed.contains(SECRET_VALUE) && !streamed.contains(&encoded),
        "the events stream carries the Secret's value"
    );
    drop(events);

    // The trial page does show the trial (what was checked is a real page).
    let page: Value = http
        .get(format!("{study_path}/trials/{}", trial.spec.number))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["trial"]["name"], trial.name_any());
    assert_eq!(page["curve"], serde_json::json!([[0, 0.5], [1, 0.25]]));

    server.abort();
    operator.abort();
    let _ = support::run(support::kubectl().args([
        "delete",
        "clusterrolebinding,clusterrole",
        &role,
        &format!("{fullname}-ui-auth"),
        "--wait=false",
    ]));
    ns.delete(&client).await;
}

/// A value no response may carry (the test's Secret holds it).
const SECRET_VALUE: &str = "s3cr3t-ui-test-value-4f1c";

fn base64_of(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
