//! The metrics sidecar (`lopper sidecar`, a real process) against the operator's push
//! endpoint on the real local control plane (`e2e/cluster.sh`), with the controllers and the
//! HTTP server inside the test process. kwok runs no containers, so the test plays the pod:
//! it reads the trial's Job, starts the sidecar with that Job's sidecar arguments and env
//! (the token resolved from the trial's Secret, the state file on a folder standing for the
//! pod's `emptyDir`) and writes the metrics file as the trainer would.
//!
//! - file: a CSV followed while written; the sidecar is killed mid-file and restarted (no step
//!   is posted twice); a poor value gets the trial pruned (Pruned, Job deleted) and the
//!   sidecar exits 0; started again afterwards it posts nothing and exits 0 on SIGTERM.
//! - tensorboard: event files in a subfolder; records written after the sidecar's last poll,
//!   just before SIGTERM (the trainer ended), are posted before it exits 0.
//! - the rendered Job of each source, created with server-side dry run: the sidecar is an
//!   init container with `restartPolicy: Always`, the shared folder is mounted in both
//!   containers (an `emptyDir`, or the user's own volume), and its security context is the
//!   chart's.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use lopper::crd::{Study, Trial, TrialPhase};
use lopper::metrics::{operator, server};
use support::operator::Aborting;
use support::{TestNamespace, wait_for};

const IMAGE: &str = "registry.example.com/lopper:test";

async fn spawn_operator(client: &Client, ns: &str) -> (SocketAddr, Aborting) {
    support::operator::spawn(
        client,
        ns,
        4,
        |url| operator::env_hook_with_sidecar(url, IMAGE.into()),
        false,
    )
    .await
}

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    server::install_crypto_provider();
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    (client, ns)
}

fn study(name: &str, upper: f64, metrics: &str, volumes: &str) -> Study {
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
  pruner: {{threshold: {{upper: {upper}}}}}
  maxTrials: 1
  parallelism: 1
  metrics: {metrics}
  trialTemplate:
    spec:
      template:
        spec:
          containers:
            - name: trainer
              image: trainer:fake
              args: ["--lr=${{params.lr}}"]
{volumes}
"#
    );
    serde_yaml::from_str(&y).expect("study manifest")
}

async fn the_trial(client: &Client, ns: &str) -> Trial {
    let api: Api<Trial> = Api::namespaced(client.clone(), ns);
    wait_for(Duration::from_secs(60), || async {
        let l = api.list(&ListParams::default()).await.ok()?.items;
        l.into_iter().find(|t| t.phase() == TrialPhase::Running)
    })
    .await
    .expect("a Running trial within 60s")
}

async fn trial_now(client: &Client, ns: &str, name: &str) -> Trial {
    let api: Api<Trial> = Api::namespaced(client.clone(), ns);
    api.get(name).await.expect("get trial")
}

fn steps(t: &Trial) -> Vec<i64> {
    t.status
        .as_ref()
        .map(|s| s.intermediate.iter().map(|p| p.step).collect())
        .unwrap_or_default()
}

async fn wait_steps(client: &Client, ns: &str, name: &str, n: usize) -> Trial {
    wait_for(Duration::from_secs(30), || async {
        let t = trial_now(client, ns, name).await;
        (steps(&t).len() >= n).then_some(t)
    })
    .await
    .unwrap_or_else(|| panic!("{name} has {n} points within 30s"))
}

/// The sidecar container of the trial's Job, with its env resolved as the kubelet would.
async fn sidecar_of(client: &Client, ns: &str, trial: &str) -> (Container, Vec<(String, String)>) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = wait_for(Duration::from_secs(30), || async {
        jobs.get_opt(trial).await.ok().flatten()
    })
    .await
    .expect("the trial's Job");
    let pod = job.spec.unwrap().template.spec.unwrap();
    let c = pod
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "lopper-metrics")
        .expect("the sidecar init container");
    assert_eq!(c.restart_policy.as_deref(), Some("Always"));
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut env = Vec::new();
    for e in c.env.clone().unwrap_or_default() {
        let v = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let sel = from.secret_key_ref.as_ref().expect("secretKeyRef");
                let s = secrets.get(&sel.name).await.expect("token Secret");
                String::from_utf8(s.data.unwrap()[&sel.key].0.clone()).unwrap()
            }
            _ => String::new(),
        };
        env.push((e.name, v));
    }
    (c, env)
}

/// A running `lopper sidecar` whose stderr is collected.
struct Sidecar {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Sidecar {
    /// Starts the sidecar as the pod would (image entrypoint `lopper` + the container's args),
    /// with its state file in `state_dir` (standing for the pod's emptyDir).
    fn start(c: &Container, env: &[(String, String)], state_dir: &Path, interval: &str) -> Sidecar {
        let mut args = c.args.clone().unwrap();
        let at = args.iter().position(|a| a == "--state").unwrap();
        args[at + 1] = state_dir.join("state.json").display().to_string();
        let mut child = Command::new(support::lopper_bin())
            .args(&args)
            .args(["--interval", interval])
            .env_clear()
            .envs(env.iter().cloned())
            .env("RUST_LOG", "lopper=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lopper sidecar");
        let log = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut g = l.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        Sidecar { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Steps this sidecar posted (its debug log).
    fn posted(&self) -> Vec<i64> {
        self.log()
            .lines()
            .filter(|l| l.contains("posted"))
            .filter_map(|l| {
                let at = l.find("step=")? + 5;
                l[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let end = std::time::Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < end,
                "sidecar still running after {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_sidecar_reports_survives_a_restart_and_prunes() {
    let (client, ns) = setup("sidecar-file").await;
    let tmp = tempfile::tempdir().unwrap();
    let metrics = tmp.path().join("out/metrics.csv");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let state = tmp.path().join("state");
    let (_addr, _op) = spawn_operator(&client, &ns.name).await;
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    let source = format!(
        "{{file: {{path: {:?}, format: csv, stepKey: epoch}}}}",
        metrics.display().to_string()
    );
    api.create(&PostParams::default(), &study("file", 1.0, &source, ""))
        .await
        .expect("create study");
    let trial = the_trial(&client, &ns.name).await;
    let name = trial.name_any();
    let (c, env) = sidecar_of(&client, &ns.name, &name).await;
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("LOPPER_METRICS_PATH").as_deref(),
        Some(metrics.to_str().unwrap())
    );
    assert!(get("LOPPER_TOKEN").is_some_and(|t| t.len() >= 32));

    // The sidecar starts before the file exists (a native sidecar starts before the trainer).
    let mut first = Sidecar::start(&c, &env, &state, "100ms");
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(
        &metrics,
        "epoch,train_loss,val_loss\n0,0.9,0.8\n1,0.8,0.7\n",
    );
    append(&metrics, "2,0.7,0.6\n3,0.6,");
    let t = wait_steps(&client, &ns.name, &name, 3).await;
    assert_eq!(steps(&t), vec![0, 1, 2], "a partial last line waits");

    // Killed mid-file (SIGKILL: no chance to save anything more), rows appended meanwhile,
    // restarted with the same state folder: every step posted exactly once.
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).await;
    append(&metrics, "0.5\n4,0.5,0.4\n");
    let second = Sidecar::start(&c, &env, &state, "100ms");
    let t = wait_steps(&client, &ns.name, &name, 5).await;
    assert_eq!(steps(&t), vec![0, 1, 2, 3, 4]);
    let mut posted = first.posted();
    posted.extend(second.posted());
    assert_eq!(
        posted,
        vec![0, 1, 2, 3, 4],
        "each step posted once across the restart:\n{}\n{}",
        first.log(),
        second.log()
    );

    // A poor value: the answer says prune; the trial is Pruned, its Job deleted, and the
    // sidecar exits 0.
    let mut second = second;
    append(&metrics, "5,0.5,1.5\n");
    let status = second.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit 0 when pruned:\n{}", second.log());
    let t = trial_now(&client, &ns.name, &name).await;
    assert_eq!(t.phase(), TrialPhase::Pruned);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let gone = wait_for(Duration::from_secs(10), || async {
        jobs.get_opt(&name)
            .await
            .ok()
            .and_then(|j| j.is_none().then_some(()))
    })
    .await;
    assert!(gone.is_some(), "the pruned trial's Job is deleted");

    // Restarted by the kubelet after the prune: it posts nothing, and ends on SIGTERM.
    append(&metrics, "6,0.5,0.1\n");
    let mut third = Sidecar::start(&c, &env, &state, "100ms");
    tokio::time::sleep(Duration::from_millis(500)).await;
    third.signal(nix::sys::signal::Signal::SIGTERM);
    let status = third.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{}", third.log());
    assert!(third.posted().is_empty(), "{}", third.log());
    assert_eq!(steps(&trial_now(&client, &ns.name, &name).await).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tensorboard_sidecar_posts_the_last_records_on_sigterm() {
    use lopper::metrics::tensorboard::event::simple_scalar_event;
    use lopper::metrics::tensorboard::tfrecord::frame;
    let (client, ns) = setup("sidecar-tb").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tb");
    let (_addr, _op) = spawn_operator(&client, &ns.name).await;
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    let source = format!(
        "{{tensorboard: {{dir: {:?}, tag: val/loss}}}}",
        dir.display().to_string()
    );
    api.create(&PostParams::default(), &study("tb", 100.0, &source, ""))
        .await
        .expect("create study");
    let trial = the_trial(&client, &ns.name).await;
    let name = trial.name_any();
    let (c, env) = sidecar_of(&client, &ns.name, &name).await;
    assert!(c.args.as_ref().unwrap().contains(&"val/loss".to_string()));
    // Event files in a subfolder (as Lightning's version_0/).
    std::fs::create_dir_all(dir.join("version_0")).unwrap();
    let file = dir.join("version_0/events.out.tfevents.1700000000.host");
    let record = |s: i64| frame(&simple_scalar_event(s, "val/loss", 1.0 / (s as f32 + 1.0)));
    let mut bytes = Vec::new();
    for s in 0..3 {
        bytes.extend(record(s));
        bytes.extend(frame(&simple_scalar_event(s, "train/loss", 9.0)));
    }
    std::fs::write(&file, &bytes).unwrap();
    // Polls 60 s apart: after the first, only the last read (on SIGTERM) can see more.
    let mut sidecar = Sidecar::start(&c, &env, &tmp.path().join("state"), "60s");
    wait_steps(&client, &ns.name, &name, 3).await;
    // The trainer writes its last two records and ends; the kubelet then stops the sidecar.
    let mut more = record(3);
    more.extend(record(4));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(&more).unwrap();
    drop(f);
    sidecar.signal(nix::sys::signal::Signal::SIGTERM);
    let status = sidecar.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{}", sidecar.log());
    let t = trial_now(&client, &ns.name, &name).await;
    assert_eq!(steps(&t), vec![0, 1, 2, 3, 4], "{}", sidecar.log());
    let last = t.status.unwrap().intermediate.last().unwrap().value;
    assert_eq!(last, Some(0.2f32 as f64));
}

/// The chart's security context for the operator container, with the pod-level user.
fn chart_security_context() -> serde_json::Value {
    let helm = support::bin("helm");
    if !helm.exists() {
        support::ensure_cluster_up();
    }
    let out = Command::new(helm)
        .args(["template", "lopper"])
        .arg(support::repo_root().join("charts/lopper"))
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        use serde::Deserialize;
        let v = serde_json::Value::deserialize(doc).unwrap();
        if v["kind"] == "Deployment" {
            let pod = &v["spec"]["template"]["spec"];
            let mut sc = pod["containers"][0]["securityContext"].clone();
            sc["runAsUser"] = pod["securityContext"]["runAsUser"].clone();
            sc["runAsGroup"] = pod["securityContext"]["runAsGroup"].clone();
            return sc;
        }
    }
    panic!("no Deployment in the chart")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_jobs_pass_server_side_dry_run() {
    use lopper::workload::job::{TrialExtras, render_job};
    let (client, ns) = setup("sidecar-render").await;
    let want_sc = chart_security_context();
    let user_volume = r#"              volumeMounts: [{name: data, mountPath: /data}]
          volumes: [{name: data, emptyDir: {}}]"#;
    let cases = [
        (
            "{file: {path: /metrics/metrics.csv, format: csv, stepKey: epoch}}",
            "",
            "/metrics",
            "lopper-metrics",
            "/metrics/metrics.csv",
        ),
        (
            "{tensorboard: {dir: /logs/tb, tag: val_loss}}",
            "",
            "/logs/tb",
            "lopper-metrics",
            "/logs/tb",
        ),
        (
            "{file: {path: /data/run/metrics.jsonl, format: jsonl}}",
            user_volume,
            "/data",
            "data",
            "/data/run/metrics.jsonl",
        ),
    ];
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    for (i, (source, volumes, mount, volume, followed)) in cases.into_iter().enumerate() {
        let mut s = study(&format!("render{i}"), 1.0, source, volumes);
        s.metadata.namespace = Some(ns.name.clone());
        s.metadata.uid = Some("u-study".into());
        assert!(s.metrics().validate().is_ok(), "{source}");
        let mut t = Trial::new(
            &format!("render{i}-0"),
            lopper::crd::TrialSpec {
                study: format!("render{i}"),
                number: 0,
                params: BTreeMap::from([(
                    "lr".to_string(),
                    lopper::engine::ParamValue::Float(0.01),
                )])
                .into_iter()
                .collect(),
                invalid: None,
            },
        );
        t.metadata.namespace = Some(ns.name.clone());
        t.metadata.uid = Some("u-trial".into());
        let mut env = operator::push_env("http://op:8080", &ns.name, &t.name_any(), "val_loss");
        env.push(k8s_openapi::api::core::v1::EnvVar {
            name: operator::METRICS_PATH_ENV.into(),
            value: Some(followed.into()),
            ..Default::default()
        });
        let job = render_job(
            &s,
            &t,
            &TrialExtras {
                env,
                sidecar_image: Some(IMAGE.into()),
            },
        )
        .expect("render");
        let mut job = job;
        // The owner (a Trial) does not exist: the dry run would still accept it, but keep
        // the object plain.
        job.metadata.owner_references = None;
        let made = jobs
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &job,
            )
            .await
            .unwrap_or_else(|e| panic!("{source}: the API server refuses the Job: {e}"));
        let pod = made.spec.unwrap().template.spec.unwrap();
        let init = pod.init_containers.unwrap();
        assert_eq!(init.len(), 1, "{source}");
        let side = &init[0];
        assert_eq!(side.name, "lopper-metrics");
        assert_eq!(side.restart_policy.as_deref(), Some("Always"), "{source}");
        assert_eq!(side.image.as_deref(), Some(IMAGE));
        assert_eq!(side.args.as_ref().unwrap()[0], "sidecar");
        assert!(
            side.args.as_ref().unwrap().contains(&followed.to_string()),
            "{source}: {:?}",
            side.args
        );
        let sc = serde_json::to_value(side.security_context.as_ref().unwrap()).unwrap();
        assert_eq!(
            sc, want_sc,
            "{source}: the sidecar's security context is the chart's"
        );
        let mounted = |c: &Container| {
            c.volume_mounts
                .clone()
                .unwrap_or_default()
                .into_iter()
                .find(|m| m.name == volume)
                .map(|m| (m.mount_path, m.read_only.unwrap_or(false)))
        };
        assert_eq!(
            mounted(&pod.containers[0]),
            Some((mount.to_string(), false)),
            "{source}"
        );
        assert_eq!(mounted(side), Some((mount.to_string(), true)), "{source}");
        let vols = pod.volumes.unwrap();
        assert!(
            vols.iter()
                .any(|v| v.name == volume && v.empty_dir.is_some()),
            "{source}"
        );
        // Both containers carry the token and the report URL.
        for c in [&pod.containers[0], side] {
            let names: Vec<_> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
            for want in [
                "LOPPER_TOKEN",
                "LOPPER_REPORT_URL",
                "LOPPER_METRIC",
                "LOPPER_METRICS_PATH",
            ] {
                assert!(names.contains(&want), "{source}: {want} in {}", c.name);
            }
        }
    }
}
