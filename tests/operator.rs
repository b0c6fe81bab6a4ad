//! The operator on the real local control plane (`e2e/cluster.sh`): each test runs the
//! controllers inside the test process, watching only the test's own namespace, and plays the
//! metric source itself through `lopper::controller::observe` (the path every source uses).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use lopper::controller::leader::LeaseLock;
use lopper::controller::{Config, ObserveError, View, observe};
use lopper::crd::{STUDY_LABEL, Study, StudyPhase, TRIAL_LABEL, Trial, TrialPhase};
use support::{TestNamespace, wait_for};
use tokio::task::JoinHandle;

/// Creates an object the typed API could not hold (the API server accepts it) and returns an
/// untyped API to read it back.
async fn create_raw<K: kube::Resource<DynamicType = ()>>(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
) -> Api<kube::api::DynamicObject> {
    let obj: kube::api::DynamicObject = serde_json::from_value(object).unwrap();
    let ar = kube::api::ApiResource::erase::<K>(&());
    let api = Api::namespaced_with(client.clone(), ns, &ar);
    api.create(&PostParams::default(), &obj)
        .await
        .expect("admission accepts the object");
    api
}

fn spawn_operator(client: &Client, ns: &str) -> JoinHandle<()> {
    let cfg = Config {
        namespaces: vec![ns.to_string()],
        concurrency: 8,
        ..Default::default()
    };
    tokio::spawn(lopper::controller::run(client.clone(), cfg))
}

/// A view of `ns` for a metric source played by the test (as the operator's own sources do).
async fn metric_source_view(client: &Client, ns: &str) -> Arc<View> {
    let view = View::start(client.clone(), &[ns.to_string()]);
    assert!(view.ready(Duration::from_secs(60)).await, "view synced");
    view
}

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    (client, ns)
}

/// A Study manifest whose pods are kwok fakes finishing after `exit_after`.
fn study_yaml(
    name: &str,
    max_trials: u32,
    parallelism: u32,
    pruner: &str,
    gpus: u32,
    exit_after: &str,
) -> Study {
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
    - name: hidden
      int: {{low: 16, high: 256, step: 16}}
  sampler: {{random: {{seed: 3}}}}
  pruner: {pruner}
  maxTrials: {max_trials}
  parallelism: {parallelism}
  metrics: {{push: {{}}}}
  trialTemplate:
    gpus: {gpus}
    metadata:
      annotations: {{lopper.dev/fake-exit-after: {exit_after}}}
    spec:
      template:
        spec:
          containers:
            - name: trainer
              image: trainer:fake
              args: ["--lr=${{params.lr}}", "--hidden=${{params.hidden}}"]
"#
    );
    serde_yaml::from_str(&y).expect("study manifest")
}

async fn create_study(client: &Client, ns: &str, s: &Study) {
    let api: Api<Study> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), s)
        .await
        .expect("create study");
}

async fn trials(client: &Client, ns: &str) -> Vec<Trial> {
    let api: Api<Trial> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list trials")
        .items
}

async fn study_phase(client: &Client, ns: &str, name: &str) -> Option<StudyPhase> {
    let api: Api<Study> = Api::namespaced(client.clone(), ns);
    api.get(name).await.ok()?.status?.phase
}

/// Plays the trainers: every unfinished trial reports one more step every `every`, with a
/// value from `curve(number, step)`, up to `steps` steps. Tracks the most trials seen active.
fn spawn_feeder(
    client: Client,
    ns: String,
    steps: i64,
    every: Duration,
    curve: fn(u64, i64) -> f64,
    max_active: Arc<AtomicU32>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let view = metric_source_view(&client, &ns).await;
        let mut next: BTreeMap<String, i64> = BTreeMap::new();
        loop {
            let all = trials(&client, &ns).await;
            let active = all.iter().filter(|t| !t.phase().is_finished()).count() as u32;
            max_active.fetch_max(active, Ordering::SeqCst);
            for t in all.iter().filter(|t| !t.phase().is_finished()) {
                let step = next.entry(t.name_any()).or_insert(0);
                if *step >= steps {
                    continue;
                }
                let v = curve(t.spec.number, *step);
                match observe(&view, &ns, &t.name_any(), &[(*step, v)]).await {
                    Ok(_) | Err(ObserveError::Finished { .. }) => *step += 1,
                    Err(e) => eprintln!("observe {}: {e}", t.name_any()),
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn study_of_ten_trials_runs_to_succeeded() {
    let started = Instant::now();
    let (client, ns) = setup("op-ten").await;
    let op = spawn_operator(&client, &ns.name);
    let s = study_yaml(
        "ten",
        10,
        3,
        "{median: {startupTrials: 2, warmupSteps: 1}}",
        0,
        "4s",
    );
    create_study(&client, &ns.name, &s).await;
    let max_active = Arc::new(AtomicU32::new(0));
    // Odd trials have a poor curve: the median pruner should stop some of them.
    let feeder = spawn_feeder(
        client.clone(),
        ns.name.clone(),
        5,
        Duration::from_millis(300),
        |n, step| {
            let base = if n % 2 == 1 && n > 2 { 2.0 } else { 1.0 };
            base / (step as f64 + 1.0)
        },
        max_active.clone(),
    );
    let phase = wait_for(Duration::from_secs(150), || {
        let client = client.clone();
        let ns = ns.name.clone();
        async move {
            study_phase(&client, &ns, "ten")
                .await
                .filter(|p| p.is_finished())
        }
    })
    .await;
    feeder.abort();
    let all = trials(&client, &ns.name).await;
    let phases: Vec<_> = all.iter().map(|t| (t.spec.number, t.phase())).collect();
    assert_eq!(phase, Some(StudyPhase::Succeeded), "trials: {phases:?}");
    assert_eq!(all.len(), 10);
    let numbers: BTreeSet<u64> = all.iter().map(|t| t.spec.number).collect();
    assert_eq!(numbers, (0..10).collect());
    assert!(
        all.iter()
            .all(|t| matches!(t.phase(), TrialPhase::Completed | TrialPhase::Pruned)),
        "{phases:?}"
    );
    assert!(
        max_active.load(Ordering::SeqCst) <= 3,
        "parallelism exceeded"
    );
    let study: Study = Api::namespaced(client.clone(), &ns.name)
        .get("ten")
        .await
        .unwrap();
    let st = study.status.unwrap();
    let counts = st.trials.unwrap();
    assert_eq!(counts.completed + counts.pruned, 10);
    assert_eq!(counts.failed, 0);
    let best = st.best.expect("best trial");
    assert!(best.value > 0.0 && best.value <= 1.0, "best {best:?}");
    assert!(
        st.conditions.iter().any(|c| c.type_ == "Succeeded"
            && c.status == "True"
            && c.reason == "MaxTrialsReached")
    );
    let metrics = lopper::metrics::server::render_metrics();
    assert!(metrics.contains("lopper_reconciles_total"), "{metrics}");
    assert!(metrics.contains("lopper_prune_decisions_total"));
    op.abort();
    eprintln!(
        "ten trials: {:.1}s, {} pruned",
        started.elapsed().as_secs_f64(),
        counts.pruned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruned_trial_loses_its_job_within_two_seconds() {
    let (client, ns) = setup("op-prune").await;
    let op = spawn_operator(&client, &ns.name);
    let s = study_yaml("p", 1, 1, "{threshold: {upper: 1.0}}", 0, "600s");
    create_study(&client, &ns.name, &s).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    // Wait for the trial's pod to run.
    wait_for(Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels(&format!("{TRIAL_LABEL}=p-0")))
                .await
                .ok()?;
            l.items
                .iter()
                .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .then_some(())
        }
    })
    .await
    .expect("trial pod running");
    let view = metric_source_view(&client, &ns.name).await;
    let out = observe(&view, &ns.name, "p-0", &[(0, 0.5)]).await.unwrap();
    assert_eq!((out.recorded, out.prune), (1, false));
    let decided = Instant::now();
    let out = observe(&view, &ns.name, "p-0", &[(1, 3.0), (1, 0.1)])
        .await
        .unwrap();
    assert_eq!((out.recorded, out.prune), (1, true));
    let gone = wait_for(Duration::from_secs(2), || {
        let jobs = jobs.clone();
        async move {
            jobs.get_opt("p-0")
                .await
                .ok()
                .and_then(|j| j.is_none().then_some(()))
        }
    })
    .await;
    assert!(
        gone.is_some(),
        "job still present 2 s after the prune decision"
    );
    eprintln!(
        "job gone {} ms after the decision",
        decided.elapsed().as_millis()
    );
    let pods_gone = wait_for(Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels(&format!("{TRIAL_LABEL}=p-0")))
                .await
                .ok()?;
            l.items.is_empty().then_some(())
        }
    })
    .await;
    assert!(pods_gone.is_some(), "pods of the pruned trial remain");
    eprintln!(
        "pods gone {} ms after the decision",
        decided.elapsed().as_millis()
    );
    let t: Trial = Api::namespaced(client.clone(), &ns.name)
        .get("p-0")
        .await
        .unwrap();
    let st = t.status.unwrap();
    assert_eq!(st.phase, Some(TrialPhase::Pruned));
    assert_eq!(st.pruned_at_step, Some(1));
    assert_eq!(st.value, Some(3.0));
    let c = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Pruned")
        .expect("Pruned condition");
    assert_eq!(c.reason, "ThresholdPruner");
    assert!(
        c.message.contains('1'),
        "message names the step: {}",
        c.message
    );
    // Finished: later reports are refused and answer prune = true.
    match observe(&view, &ns.name, "p-0", &[(2, 0.1)]).await {
        Err(ObserveError::Finished { prune: true, .. }) => {}
        other => panic!("expected Finished, got {other:?}"),
    }
    assert!(matches!(
        observe(&view, &ns.name, "nope", &[(0, 1.0)]).await,
        Err(ObserveError::NotFound(_))
    ));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let ev = wait_for(Duration::from_secs(10), || {
        let events = events.clone();
        async move {
            let l = events.list(&ListParams::default()).await.ok()?;
            l.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("Pruned"))
        }
    })
    .await;
    assert!(ev.is_some(), "a Pruned event");
    op.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_eight_one_gpu_trials_run_at_once() {
    let _gpus = support::gpus_exclusive().await;
    let (client, ns) = setup("op-gpu").await;
    let op = spawn_operator(&client, &ns.name);
    let s = study_yaml("g", 12, 50, "{none: {}}", 1, "600s");
    create_study(&client, &ns.name, &s).await;
    let seen_over = Arc::new(AtomicBool::new(false));
    let result = wait_for(Duration::from_secs(90), || {
        let client = client.clone();
        let ns = ns.name.clone();
        let seen_over = seen_over.clone();
        async move {
            let all = trials(&client, &ns).await;
            let running = all
                .iter()
                .filter(|t| t.phase() == TrialPhase::Running)
                .count();
            let pending = all
                .iter()
                .filter(|t| t.phase() == TrialPhase::Pending)
                .count();
            let failed = all
                .iter()
                .filter(|t| t.phase() == TrialPhase::Failed)
                .count();
            if running > 8 {
                seen_over.store(true, Ordering::SeqCst);
            }
            assert_eq!(failed, 0, "no trial counted failed");
            (all.len() == 12 && running == 8 && pending == 4).then_some(())
        }
    })
    .await;
    let all = trials(&client, &ns.name).await;
    let summary: Vec<_> = all.iter().map(|t| (t.spec.number, t.phase())).collect();
    assert!(
        result.is_some(),
        "expected 8 running + 4 pending: {summary:?}"
    );
    assert!(!seen_over.load(Ordering::SeqCst));
    // Stays that way: the pending ones wait, nothing fails.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = trials(&client, &ns.name).await;
    assert_eq!(
        all.iter()
            .filter(|t| t.phase() == TrialPhase::Running)
            .count(),
        8
    );
    assert_eq!(
        all.iter()
            .filter(|t| t.phase() == TrialPhase::Failed)
            .count(),
        0
    );
    let study: Study = Api::namespaced(client.clone(), &ns.name)
        .get("g")
        .await
        .unwrap();
    let c = study.status.unwrap().trials.unwrap();
    assert_eq!((c.created, c.running, c.failed), (12, 12, 0));
    // Free the GPUs for other tests before the namespace goes.
    let studies: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    op.abort();
    let _ = studies.delete("g", &DeleteParams::foreground()).await;
    ns.delete(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_operator_finishes_with_exactly_max_trials() {
    let (client, ns) = setup("op-restart").await;
    let s = study_yaml("r", 9, 3, "{none: {}}", 0, "3s");
    create_study(&client, &ns.name, &s).await;
    let max_active = Arc::new(AtomicU32::new(0));
    let feeder = spawn_feeder(
        client.clone(),
        ns.name.clone(),
        3,
        Duration::from_millis(300),
        |n, step| 1.0 / (n as f64 + step as f64 + 1.0),
        max_active.clone(),
    );
    let op = spawn_operator(&client, &ns.name);
    wait_for(Duration::from_secs(60), || {
        let client = client.clone();
        let ns = ns.name.clone();
        async move {
            let all = trials(&client, &ns).await;
            (all.len() >= 4).then_some(())
        }
    })
    .await
    .expect("some trials created");
    // Kill the operator mid-study; then start two at once (racing reconciles).
    op.abort();
    let _ = op.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = spawn_operator(&client, &ns.name);
    let b = spawn_operator(&client, &ns.name);
    let phase = wait_for(Duration::from_secs(150), || {
        let client = client.clone();
        let ns = ns.name.clone();
        async move {
            study_phase(&client, &ns, "r")
                .await
                .filter(|p| p.is_finished())
        }
    })
    .await;
    feeder.abort();
    a.abort();
    b.abort();
    let all = trials(&client, &ns.name).await;
    let summary: Vec<_> = all.iter().map(|t| (t.spec.number, t.phase())).collect();
    assert_eq!(phase, Some(StudyPhase::Succeeded), "{summary:?}");
    assert_eq!(all.len(), 9, "{summary:?}");
    let numbers: BTreeSet<u64> = all.iter().map(|t| t.spec.number).collect();
    assert_eq!(numbers, (0..9).collect(), "dense numbers");
    assert!(
        all.iter().all(|t| t.phase() == TrialPhase::Completed),
        "{summary:?}"
    );
    let names: BTreeSet<String> = all.iter().map(|t| t.name_any()).collect();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let jl = jobs.list(&ListParams::default()).await.unwrap().items;
    for j in &jl {
        let owner = j.owner_references().iter().find(|o| o.kind == "Trial");
        let owner = owner.unwrap_or_else(|| panic!("job {} has no Trial owner", j.name_any()));
        assert!(names.contains(&owner.name), "orphan job {}", j.name_any());
        assert_eq!(j.labels().get(STUDY_LABEL).map(String::as_str), Some("r"));
    }
    assert_eq!(jl.len(), 9, "one job per trial");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_has_one_holder_at_a_time() {
    let (client, ns) = setup("op-lease").await;
    let d = Duration::from_secs(3);
    let a = LeaseLock::new(client.clone(), &ns.name, "lopper", "a", d);
    let b = LeaseLock::new(client.clone(), &ns.name, "lopper", "b", d);
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap(), "holder renews");
    // Expiry: b takes over once a stops renewing for the lease duration.
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), b.acquire())
        .await
        .expect("b acquires after expiry");
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert!(!a.try_acquire_or_renew().await.unwrap());
    // A clean release hands over at once.
    b.release().await;
    assert!(a.try_acquire_or_renew().await.unwrap());
}

/// Specs the schema cannot judge get `InvalidSpec` with the engine's message; a valid study
/// next to them runs normally (no crash loop, no stalled watch).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_specs_get_invalid_spec_and_others_still_run() {
    let (client, ns) = setup("op-invalid").await;
    let op = spawn_operator(&client, &ns.name);
    let bad_pruner = study_yaml(
        "bad-pruner",
        2,
        1,
        "{successiveHalving: {minResource: auto, bootstrapCount: 2}}",
        0,
        "600s",
    );
    let mut bad_grid = study_yaml("bad-grid", 2, 1, "{none: {}}", 0, "600s");
    bad_grid.spec.sampler = Some(serde_json::from_value(serde_json::json!({"grid": {}})).unwrap());
    // A placeholder naming no parameter: said once by the Study, not by every trial failing.
    let mut bad_template = study_yaml("bad-template", 2, 1, "{none: {}}", 0, "600s");
    bad_template.spec.trial_template.spec.as_mut().unwrap()["template"]["spec"]["containers"][0]
        ["args"][0] = serde_json::json!("--lr=${params.lrr}");
    let good = study_yaml("good", 1, 1, "{none: {}}", 0, "600s");
    for s in [&bad_pruner, &bad_grid, &bad_template, &good] {
        create_study(&client, &ns.name, s).await;
    }
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    for (name, field) in [
        ("bad-pruner", "spec.pruner"),
        ("bad-grid", "spec.sampler"),
        ("bad-template", "unknown placeholder ${params.lrr}"),
    ] {
        let st = wait_for(Duration::from_secs(30), || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?.status?;
                (s.phase == Some(StudyPhase::Failed)).then_some(s)
            }
        })
        .await
        .unwrap_or_else(|| panic!("{name} not Failed"));
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(ready.message.contains(field), "{name}: {}", ready.message);
    }
    let all = trials(&client, &ns.name).await;
    assert!(
        all.iter().all(|t| t.spec.study == "good"),
        "no trials for invalid studies"
    );
    wait_for(Duration::from_secs(30), || {
        let client = client.clone();
        let ns = ns.name.clone();
        async move { (!trials(&client, &ns).await.is_empty()).then_some(()) }
    })
    .await
    .expect("the valid study runs");
    op.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreadable_study_fails_alone_and_others_still_run() {
    let (client, ns) = setup("op-unreadable").await;
    let op = spawn_operator(&client, &ns.name);
    // Admission accepts it (`choices` items are untyped), but `ParamValue` cannot read it.
    let dynapi = create_raw::<Study>(
        &client,
        &ns.name,
        serde_json::json!({
            "apiVersion": "lopper.dev/v1alpha1",
            "kind": "Study",
            "metadata": {"name": "unreadable"},
            "spec": {
                "objective": {"metric": "val_loss", "direction": "minimize"},
                "parameters": [
                    {"name": "opt", "categorical": {"choices": [{"a": 1}, [1, 2]]}},
                    {"name": "x", "float": {"low": 0, "high": 1}, "when": {"opt": [{"b": 2}]}}
                ],
                "maxTrials": 3,
                "parallelism": 1,
                "trialTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "t", "image": "x"}]
                }}}}
            }
        }),
    )
    .await;
    let good = study_yaml("good", 1, 1, "{none: {}}", 0, "600s");
    create_study(&client, &ns.name, &good).await;

    wait_for(Duration::from_secs(30), || {
        let client = client.clone();
        let ns = ns.name.clone();
        async move { (!trials(&client, &ns).await.is_empty()).then_some(()) }
    })
    .await
    .expect("the readable study runs despite the unreadable one");
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    let st = wait_for(Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let s = api.get("unreadable").await.ok()?.status?;
            (s.phase == Some(StudyPhase::Failed)).then_some(s)
        }
    })
    .await
    .expect("unreadable study Failed");
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        ready
            .message
            .contains("spec.parameters[0].categorical.choices"),
        "{}",
        ready.message
    );
    assert!(
        trials(&client, &ns.name)
            .await
            .iter()
            .all(|t| t.spec.study == "good"),
        "no trials for the unreadable study"
    );
    // Its stored spec is untouched (the placeholder is never written back).
    let raw = dynapi.get("unreadable").await.unwrap();
    assert_eq!(
        raw.data["spec"]["parameters"][0]["categorical"]["choices"][0]["a"],
        1
    );
    op.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreadable_trial_fails_alone_and_studies_still_run() {
    let (client, ns) = setup("op-badtrial").await;
    let op = spawn_operator(&client, &ns.name);
    // Admission accepts it (param values are untyped), but `ParamValue` cannot read it. It
    // exists before the study, so the study's first list of Trials already contains it.
    let dynapi = create_raw::<Trial>(
        &client,
        &ns.name,
        serde_json::json!({
            "apiVersion": "lopper.dev/v1alpha1",
            "kind": "Trial",
            "metadata": {"name": "by-hand"},
            "spec": {"study": "good", "number": 9, "params": {"lr": {"a": 1}, "hidden": 64}}
        }),
    )
    .await;
    let good = study_yaml("good", 2, 2, "{none: {}}", 0, "600s");
    create_study(&client, &ns.name, &good).await;

    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    wait_for(Duration::from_secs(30), || {
        let jobs = jobs.clone();
        async move {
            let names: BTreeSet<String> = jobs
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|j| j.name_any())
                .collect();
            (names.contains("good-0") && names.contains("good-1")).then_some(())
        }
    })
    .await
    .expect("the study's trials get their Jobs despite the unreadable trial");
    let api: Api<Trial> = Api::namespaced(client.clone(), &ns.name);
    let t = wait_for(Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let t = api.get("by-hand").await.ok()?;
            (t.phase() == TrialPhase::Failed).then_some(t)
        }
    })
    .await
    .expect("the unreadable trial is Failed");
    let failed = t
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Failed"))
        .expect("Failed condition");
    assert_eq!(failed.reason, "InvalidSpec");
    assert!(
        failed.message.starts_with("spec.params.lr"),
        "{}",
        failed.message
    );
    assert!(
        jobs.get_opt("by-hand").await.unwrap().is_none(),
        "no Job for the unreadable trial"
    );
    // Its stored spec is untouched (the placeholder is never written back).
    let raw = dynapi.get("by-hand").await.unwrap();
    assert_eq!(raw.data["spec"]["params"]["lr"]["a"], 1);
    op.abort();
}
