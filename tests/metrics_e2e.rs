//! Metric sources end to end on the real local control plane (`e2e/cluster.sh`), with the
//! controllers, the metric-source manager and the HTTP server running inside the test process
//! (watching only the test's namespace):
//!
//! - push: the test plays the trainer of each running trial (reads the token Secret, posts
//!   curves); poor trials are answered `prune: true`, become Pruned and lose their Jobs; a wrong
//!   token is refused with 401 and records nothing.
//! - prometheus: a real Prometheus server (Debian's `prometheus`, `e2e/install-prometheus.sh`)
//!   started by the test on a loopback port scrapes an exporter the test serves; Prometheus is
//!   stopped mid-study (no pruning while it is down, `MetricsUnavailable` appears) and
//!   restarted (the condition clears, the poor trial is pruned).
//! - logs: the manager follows each trial pod's log through the real kube-apiserver, which
//!   proxies `pods/log` to kwok's kubelet API serving `e2e/fake-logs/*.log` (`e2e/kwok-logs.yaml`,
//!   chosen by container name); a diverging log is pruned at the step it crosses the threshold.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use lopper::crd::{Study, Trial, TrialPhase};
use lopper::metrics::{operator, server};
use support::operator::Aborting;
use support::{TestNamespace, wait_for};
use tokio::task::JoinHandle;

/// Controllers (with the push env hook), the metric-source manager and the HTTP server.
async fn spawn_operator(client: &Client, ns: &str) -> (SocketAddr, Aborting) {
    support::operator::spawn(client, ns, 8, operator::env_hook, true).await
}

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    server::install_crypto_provider();
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    (client, ns)
}

fn study(name: &str, max_trials: u32, metrics: &str) -> Study {
    let y = format!(
        r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: {name}}}
spec:
  objective: {{metric: val_loss, direction: minimize}}
  parameters:
    - name: lr
      float: {{low: 0.0001, high: 0.5, log: true}}
  sampler: {{random: {{seed: 5}}}}
  pruner: {{threshold: {{upper: 1.0}}}}
  maxTrials: {max_trials}
  parallelism: {max_trials}
  metrics: {metrics}
  trialTemplate:
    spec:
      template:
        spec:
          containers:
            - name: trainer
              image: trainer:fake
              args: ["--lr=${{params.lr}}"]
"#
    );
    serde_yaml::from_str(&y).expect("study manifest")
}

async fn all_trials(client: &Client, ns: &str) -> Vec<Trial> {
    let api: Api<Trial> = Api::namespaced(client.clone(), ns);
    let mut v = api.list(&ListParams::default()).await.expect("list").items;
    v.sort_by_key(|t| t.spec.number);
    v
}

async fn running_trials(client: &Client, ns: &str, n: usize) -> Vec<Trial> {
    wait_for(Duration::from_secs(60), || async {
        let t = all_trials(client, ns).await;
        (t.len() == n && t.iter().all(|t| t.phase() == TrialPhase::Running)).then_some(t)
    })
    .await
    .unwrap_or_else(|| panic!("{n} running trials in {ns} within 60s"))
}

async fn job_exists(client: &Client, ns: &str, name: &str) -> bool {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    api.get_opt(name).await.ok().flatten().is_some()
}

fn points(t: &Trial) -> usize {
    t.status.as_ref().map_or(0, |s| s.intermediate.len())
}

async fn post(
    http: &reqwest::Client,
    addr: SocketAddr,
    ns: &str,
    trial: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let url = format!(
        "http://{addr}{}",
        lopper::metrics::push::report_path(ns, trial)
    );
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post report");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_reports_prune_poor_trials_and_refuse_wrong_tokens() {
    let (client, ns) = setup("metrics-push").await;
    let (addr, _op) = spawn_operator(&client, &ns.name).await;
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &study("push", 4, "{push: {}}"))
        .await
        .expect("create study");
    let trials = running_trials(&client, &ns.name, 4).await;

    // Each trial has its token Secret (owned by the Trial) and the push env on its Job.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let mut tokens = BTreeMap::new();
    for t in &trials {
        let name = t.name_any();
        let s = secrets.get(&name).await.expect("token Secret");
        assert!(
            s.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == t.uid().as_ref()),
            "Secret {name} owned by its Trial"
        );
        let token = String::from_utf8(s.data.unwrap()["token"].0.clone()).unwrap();
        assert!(token.len() >= 32);
        let job = wait_for(Duration::from_secs(20), || async {
            jobs.get_opt(&name).await.ok().flatten()
        })
        .await
        .expect("job");
        let env = job.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap_or_default();
        let tok = env
            .iter()
            .find(|e| e.name == "LOPPER_TOKEN")
            .expect("LOPPER_TOKEN");
        let sel = tok
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (sel.name.as_str(), sel.key.as_str()),
            (name.as_str(), "token")
        );
        let url = env
            .iter()
            .find(|e| e.name == "LOPPER_REPORT_URL")
            .expect("URL");
        assert_eq!(
            url.value.as_deref().unwrap(),
            format!(
                "http://{addr}/v1/namespaces/{}/trials/{name}/report",
                ns.name
            )
        );
        tokens.insert(name, token);
    }

    let http = reqwest::Client::new();
    let names: Vec<String> = tokens.keys().cloned().collect();
    let (a, b) = (&names[0], &names[1]);
    // Wrong token, another trial's token, no objective, unknown trial.
    let body = serde_json::json!({"step": 0, "metrics": {"val_loss": 0.5}});
    assert_eq!(
        post(&http, addr, &ns.name, a, "wrong", body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        post(&http, addr, &ns.name, a, &tokens[b], body.clone())
            .await
            .0,
        401
    );
    let (s, e) = post(
        &http,
        addr,
        &ns.name,
        a,
        &tokens[a],
        serde_json::json!({"step": 0, "metrics": {"acc": 1}}),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("val_loss"), "{e}");
    // An unknown trial and an unwatched namespace get the very answer a wrong token gets:
    // the port reveals nothing before a token is checked.
    let wrong = post(&http, addr, &ns.name, a, "x", body.clone()).await;
    let unknown = post(&http, addr, &ns.name, "nope", "x", body.clone()).await;
    let elsewhere = post(&http, addr, "kube-system", a, &tokens[a], body.clone()).await;
    assert_eq!(wrong.0, 401);
    assert_eq!(unknown, wrong, "unknown trial answered like a wrong token");
    assert_eq!(
        elsewhere, wrong,
        "unwatched namespace answered like a wrong token"
    );
    let t: Api<Trial> = Api::namespaced(client.clone(), &ns.name);
    assert_eq!(
        points(&t.get(a).await.unwrap()),
        0,
        "nothing recorded by refused reports"
    );

    // Play the trainers: even numbers learn, odd numbers are poor (above the threshold 1.0).
    let mut pruned_answer = BTreeMap::new();
    for step in 0..4i64 {
        for tr in &trials {
            let name = tr.name_any();
            if pruned_answer.contains_key(&name) {
                continue;
            }
            let v = if tr.spec.number % 2 == 0 {
                0.9 / (step as f64 + 1.0)
            } else {
                1.5 + step as f64
            };
            let (s, ans) = post(
                &http,
                addr,
                &ns.name,
                &name,
                &tokens[&name],
                serde_json::json!({"step": step, "metrics": {"val_loss": v, "val_acc": 0.5}}),
            )
            .await;
            assert_eq!(s, 200, "{name} step {step}: {ans}");
            if ans["prune"] == true {
                pruned_answer.insert(name, step);
            }
        }
    }
    for tr in &trials {
        let name = tr.name_any();
        let poor = tr.spec.number % 2 == 1;
        assert_eq!(pruned_answer.get(&name), poor.then_some(&0), "{name}");
        let now = t.get(&name).await.unwrap();
        if poor {
            assert_eq!(now.phase(), TrialPhase::Pruned, "{name}");
            let gone = wait_for(Duration::from_secs(5), || async {
                (!job_exists(&client, &ns.name, &name).await).then_some(())
            })
            .await;
            assert!(gone.is_some(), "the Job of pruned {name} is deleted");
            // The trainer is told again to stop (409, prune: true).
            let (s, ans) = post(&http, addr, &ns.name, &name, &tokens[&name], body.clone()).await;
            assert_eq!((s, ans["prune"].clone()), (409, serde_json::json!(true)));
        } else {
            assert_eq!(now.phase(), TrialPhase::Running, "{name}");
            assert_eq!(points(&now), 4, "{name}");
            assert!(job_exists(&client, &ns.name, &name).await);
        }
    }
    // A long curve: 600 more points of a learning trial. The oldest are sealed into
    // CurveChunks, the Trial keeps the newest compactly, and `lopper curve` prints them all.
    let learner = trials
        .iter()
        .find(|tr| tr.spec.number % 2 == 0)
        .expect("a learning trial")
        .name_any();
    let value = |step: i64| 0.9 / (step as f64 + 1.0) + (step % 7) as f64 * 1e-9;
    for step in 4..604i64 {
        let body = serde_json::json!({"step": step, "metrics": {"val_loss": value(step)}});
        loop {
            let (s, ans) = post(
                &http,
                addr,
                &ns.name,
                &learner,
                &tokens[&learner],
                body.clone(),
            )
            .await;
            if s == 429 {
                // The per-trial rate limit (50/s after a burst of 200): slow down, as told.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            assert_eq!(s, 200, "{learner} step {step}: {ans}");
            break;
        }
    }
    let raw: serde_json::Value = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &ns.name,
        &kube::discovery::ApiResource::erase::<Trial>(&()),
    )
    .get(&learner)
    .await
    .unwrap()
    .data;
    assert_eq!(raw["status"]["curveChunks"], 2, "{}", raw["status"]);
    assert!(
        raw["status"]["intermediate"].is_string(),
        "the recent points are one compact string: {}",
        raw["status"]
    );
    let out = Command::new(support::lopper_bin())
        .args(["curve", &learner, "-n", &ns.name])
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .expect("run lopper curve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<(i64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (s, v) = l.split_once(' ').expect("step value");
            (s.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    let want: Vec<(i64, f64)> = (0..604)
        .map(|s| {
            (
                s,
                if s < 4 {
                    0.9 / (s as f64 + 1.0)
                } else {
                    value(s)
                },
            )
        })
        .collect();
    assert_eq!(printed, want, "every point, in order, bit for bit");

    // The operator's /metrics counts the reports.
    let m = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("lopper_metric_observations_total{source=\"push\"}"),
        "{m}"
    );
    assert!(
        m.contains("lopper_report_duration_seconds_bucket{code=\"401\""),
        "{m}"
    );
}

/// The exporter's state: per trial (step, value); served as `epoch` and `val_loss`.
type Series = Arc<Mutex<BTreeMap<String, (i64, f64)>>>;

async fn serve_exporter(series: Series) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let series = series.clone();
            async move {
                let mut out = String::from("# TYPE epoch gauge\n# TYPE val_loss gauge\n");
                for (t, (s, v)) in series.lock().unwrap().iter() {
                    out.push_str(&format!(
                        "epoch{{trial=\"{t}\"}} {s}\nval_loss{{trial=\"{t}\"}} {v}\n"
                    ));
                }
                out
            }
        }),
    );
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, h)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Prometheus {
    child: Option<Child>,
}

impl Prometheus {
    fn start(dir: &Path, port: u16) -> Prometheus {
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (bash e2e/install-prometheus.sh)");
        Prometheus { child: Some(child) }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn condition(client: &Client, ns: &str, name: &str) -> Option<(String, String)> {
    let api: Api<Study> = Api::namespaced(client.clone(), ns);
    let s = api.get(name).await.ok()?;
    s.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "MetricsUnavailable")
        .map(|c| (c.status, c.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_source_survives_an_outage_without_pruning() {
    let (client, ns) = setup("metrics-prom").await;
    let (addr, _op) = spawn_operator(&client, &ns.name).await;
    let _ = addr;

    // The exporter the real Prometheus scrapes every second.
    let series: Series = Arc::default();
    let (exporter, _exp) = serve_exporter(series.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: trainer\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut prom = Prometheus::start(dir.path(), port);

    let metrics = format!(
        r#"{{prometheus: {{url: "http://127.0.0.1:{port}", value: 'val_loss{{trial="{{{{trial}}}}"}}', step: 'epoch{{trial="{{{{trial}}}}"}}', interval: 1s}}}}"#
    );
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &study("prom", 3, &metrics))
        .await
        .expect("create study");
    let trials = running_trials(&client, &ns.name, 3).await;
    let names: Vec<String> = trials.iter().map(|t| t.name_any()).collect();
    let poor = names[1].clone();

    // The trainers: one more epoch per 700 ms, every trial learning (below the threshold).
    let stop_bad = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let series = series.clone();
        let names = names.clone();
        let poor = poor.clone();
        let stop_bad = stop_bad.clone();
        tokio::spawn(async move {
            for step in 0i64.. {
                {
                    let mut s = series.lock().unwrap();
                    for n in &names {
                        let bad = *n == poor && stop_bad.load(std::sync::atomic::Ordering::SeqCst);
                        let v = if bad { 5.0 } else { 0.9 / (step as f64 + 1.0) };
                        s.insert(n.clone(), (step, v));
                    }
                }
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        })
    };
    let _feeder = Aborting(vec![feeder]);

    // Points arrive through Prometheus for every trial; no condition (or False).
    let t: Api<Trial> = Api::namespaced(client.clone(), &ns.name);
    wait_for(Duration::from_secs(60), || async {
        let all = all_trials(&client, &ns.name).await;
        all.iter().all(|t| points(t) >= 3).then_some(())
    })
    .await
    .expect("3+ points per trial through Prometheus within 60s");
    // The trials may start before the first series is scraped, so a brief SeriesAbsent
    // condition may already have come and gone: absent or False both mean "flowing".
    let before = condition(&client, &ns.name, "prom").await;
    assert!(
        before.as_ref().is_none_or(|(s, _)| s == "False"),
        "no MetricsUnavailable=True while metrics flow, got {before:?}"
    );

    // Prometheus goes down; the poor trial turns poor meanwhile: nothing is pruned, the
    // condition appears with the error.
    prom.stop();
    stop_bad.store(true, std::sync::atomic::Ordering::SeqCst);
    let (s, msg) = wait_for(Duration::from_secs(30), || async {
        condition(&client, &ns.name, "prom")
            .await
            .filter(|(s, _)| s == "True")
    })
    .await
    .expect("MetricsUnavailable=True within 30s of stopping Prometheus");
    assert_eq!(s, "True");
    assert!(msg.contains("127.0.0.1"), "{msg}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in &names {
        let tr = t.get(n).await.unwrap();
        assert_eq!(
            tr.phase(),
            TrialPhase::Running,
            "{n} is not pruned while Prometheus is down"
        );
        assert!(job_exists(&client, &ns.name, n).await);
    }

    // Prometheus comes back: the condition clears and the poor trial is pruned on real data.
    let mut prom = Prometheus::start(dir.path(), port);
    wait_for(Duration::from_secs(60), || async {
        condition(&client, &ns.name, "prom")
            .await
            .filter(|(s, _)| s == "False")
    })
    .await
    .expect("MetricsUnavailable cleared within 60s of the restart");
    let pruned = wait_for(Duration::from_secs(30), || async {
        let tr = t.get(&poor).await.ok()?;
        (tr.phase() == TrialPhase::Pruned).then_some(tr)
    })
    .await
    .expect("the poor trial is pruned after the restart");
    assert_eq!(pruned.status.unwrap().value, Some(5.0));
    wait_for(Duration::from_secs(5), || async {
        (!job_exists(&client, &ns.name, &poor).await).then_some(())
    })
    .await
    .expect("its Job is deleted");
    for n in names.iter().filter(|n| **n != poor) {
        assert_eq!(t.get(n).await.unwrap().phase(), TrialPhase::Running, "{n}");
    }
    prom.stop();
}

/// A one-trial Study whose trainer container is named `container`: kwok serves
/// `e2e/fake-logs/<file>.log` for containers named `fake-logs-<file>` (`e2e/kwok-logs.yaml`).
fn logs_study(name: &str, container: &str) -> Study {
    let y = format!(
        r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: {name}}}
spec:
  objective: {{metric: val_loss, direction: minimize}}
  parameters:
    - name: lr
      float: {{low: 0.0001, high: 0.5, log: true}}
  sampler: {{random: {{seed: 5}}}}
  pruner: {{threshold: {{upper: 1.0}}}}
  maxTrials: 1
  parallelism: 1
  metrics: {{logs: {{format: keyValue, stepKey: epoch}}}}
  trialTemplate:
    spec:
      template:
        spec:
          containers:
            - name: {container}
              image: trainer:fake
              args: ["--lr=${{params.lr}}"]
"#
    );
    serde_yaml::from_str(&y).expect("study manifest")
}

fn curve(t: &Trial) -> Vec<(i64, Option<f64>)> {
    t.status
        .as_ref()
        .map(|s| s.intermediate.iter().map(|p| (p.step, p.value)).collect())
        .unwrap_or_default()
}

/// The `logs` source live: the manager follows `pods/log?follow=true&timestamps=true` through
/// the real kube-apiserver, which proxies it to kwok's kubelet API serving the fake log files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_source_follows_pod_logs_through_the_apiserver_and_prunes() {
    let (client, ns) = setup("metrics-logs").await;
    let (_addr, _op) = spawn_operator(&client, &ns.name).await;
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &logs_study("good", "fake-logs-digits"),
    )
    .await
    .expect("create study good");
    api.create(
        &PostParams::default(),
        &logs_study("bad", "fake-logs-diverging"),
    )
    .await
    .expect("create study bad");
    let t: Api<Trial> = Api::namespaced(client.clone(), &ns.name);
    let of_study = |study: &'static str| {
        let client = client.clone();
        let ns = ns.name.clone();
        async move {
            all_trials(&client, &ns)
                .await
                .into_iter()
                .find(|t| t.spec.study == study)
        }
    };

    // digits.log: epochs 0..4, val_loss falling below the threshold: all five points recorded,
    // the trial keeps running (the fake pod never exits).
    let good = wait_for(Duration::from_secs(90), || async {
        of_study("good")
            .await
            .filter(|t| curve(t).len() == 5 && t.phase() == TrialPhase::Running)
    })
    .await
    .expect("the good trial Running with its 5 epochs from the pod log within 90s");
    assert_eq!(
        curve(&good),
        vec![
            (0, Some(0.90)),
            (1, Some(0.62)),
            (2, Some(0.41)),
            (3, Some(0.30)),
            (4, Some(0.24)),
        ]
    );
    assert_eq!(good.phase(), TrialPhase::Running);
    assert!(job_exists(&client, &ns.name, &good.name_any()).await);

    // diverging.log: val_loss 1.40 > 1.0 at epoch 3: pruned there, its Job deleted.
    let bad = wait_for(Duration::from_secs(90), || async {
        of_study("bad")
            .await
            .filter(|t| t.phase() == TrialPhase::Pruned)
    })
    .await
    .expect("the diverging trial pruned within 90s");
    let name = bad.name_any();
    assert_eq!(
        curve(&bad),
        vec![
            (0, Some(0.90)),
            (1, Some(0.70)),
            (2, Some(0.80)),
            (3, Some(1.40))
        ]
    );
    let st = bad.status.clone().unwrap();
    assert_eq!(st.pruned_at_step, Some(3), "{st:?}");
    assert_eq!(st.value, Some(1.40));
    wait_for(Duration::from_secs(10), || async {
        (!job_exists(&client, &ns.name, &name).await).then_some(())
    })
    .await
    .expect("the pruned trial's Job is deleted");

    // The good trial's follower is still attached and nothing more arrived (no duplicates
    // from reconnects).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let good = t.get(&good.name_any()).await.unwrap();
    assert_eq!(curve(&good).len(), 5);
    assert_eq!(good.phase(), TrialPhase::Running);
}

/// A Study may only use a Secret that its owner labelled for Prometheus: naming any other
/// (say, the namespace's database password) gets `MetricsUnavailable` and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_auth_secret_must_opt_in() {
    let (client, ns) = setup("metrics-auth").await;
    let (_addr, _op) = spawn_operator(&client, &ns.name).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let creds: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db-creds"},
        "stringData": {"username": "admin", "password": "hunter2"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &creds)
        .await
        .expect("create secret");
    // Nothing listens at this port: past the auth check, the next problem is "unreachable".
    let port = free_port();
    let metrics = format!(
        r#"{{prometheus: {{url: "http://127.0.0.1:{port}", value: 'val_loss{{trial="{{{{trial}}}}"}}', interval: 1s, auth: {{secretRef: {{name: db-creds}}}}}}}}"#
    );
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &study("auth", 1, &metrics))
        .await
        .expect("create study");
    let (_, msg) = wait_for(Duration::from_secs(45), || async {
        condition(&client, &ns.name, "auth")
            .await
            .filter(|(s, _)| s == "True")
    })
    .await
    .expect("MetricsUnavailable=True for the unlabelled Secret");
    assert!(
        msg.contains("db-creds lacks the label lopper.dev/prometheus-auth=true"),
        "{msg}"
    );

    // The owner opts in: the credentials are read, and only the missing Prometheus remains.
    secrets
        .patch(
            "db-creds",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "metadata": {"labels": {"lopper.dev/prometheus-auth": "true"}}
            })),
        )
        .await
        .expect("label secret");
    let (_, msg) = wait_for(Duration::from_secs(45), || async {
        condition(&client, &ns.name, "auth")
            .await
            .filter(|(s, m)| s == "True" && !m.contains("lacks the label"))
    })
    .await
    .expect("the labelled Secret is accepted");
    assert!(msg.contains("unreachable"), "{msg}");
}
