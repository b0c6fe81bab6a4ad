//! Trials on the workloads GPU clusters run, on the real local control plane with the real
//! Kueue manager and JobSet controller (`e2e/cluster.sh addons-up`, built from pinned Go
//! modules) and the operator in-process:
//!
//! - a Study of parallelism 8 behind a ClusterQueue of 4 GPUs: 4 trials run, 4 wait `Queued`
//!   (as `kubectl get trials` shows), the operator restarts, never more than 4 GPUs in use, then
//!   the queue drains and every trial completes, its queued time not counted as GPU time;
//! - a higher-priority workload preempts two trials: the `Requeue` study's trial waits
//!   `Queued` again and runs once readmitted, the `Fail` study's trial fails `Preempted` and its
//!   Job goes;
//! - a JobSet trial (2 replicated jobs × 2 pods × 2 GPUs) admitted by Kueue, pruned through
//!   push metrics: the JobSet and all four pods go, the status says why, 8 GPUs are counted;
//! - a TrainJob trial (2 nodes × 2 GPUs, the Trainer's `torch-distributed` runtime) admitted by
//!   Kueue, run by the real Trainer and JobSet controllers, pruned through push: the TrainJob,
//!   its JobSet and both pods go.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use lopper::crd::{Study, TRIAL_LABEL, Trial, TrialPhase};
use lopper::metrics::{operator, server};
use lopper::workload::kinds::WorkloadKind;
use serde_json::json;
use support::operator::Aborting;
use support::{TestNamespace, wait_for};

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    server::install_crypto_provider();
    let client = support::cluster().await;
    support::ensure_kueue_up();
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    (client, ns)
}

async fn spawn_operator(client: &Client, ns: &str) -> (SocketAddr, Aborting) {
    support::operator::spawn(client, ns, 8, operator::env_hook, true).await
}

/// Applies cluster-scoped or namespaced objects (YAML documents) server-side.
async fn apply(client: &Client, ns: &str, yaml: &str) {
    let discovery = kube::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let obj: DynamicObject =
            DynamicObject::deserialize(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        let tm = obj.types.clone().expect("apiVersion and kind");
        let gvk = kube::api::GroupVersionKind::try_from(&tm).unwrap();
        let (ar, caps) = discovery.resolve_gvk(&gvk).expect("served kind");
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Namespaced => Api::namespaced_with(client.clone(), ns, &ar),
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("lopper-test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {}: {e}", tm.kind, obj.name_any()));
    }
}

use serde::Deserialize;

/// A ResourceFlavor, a ClusterQueue of `gpus` GPUs (preempting lower priorities within it)
/// and the LocalQueue `lq` in `ns`. Cluster-scoped names carry the namespace's.
async fn queue(client: &Client, ns: &str, gpus: u32) {
    apply(
        client,
        ns,
        &format!(
            r#"
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {{name: gpu-{ns}}}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {{name: cq-{ns}}}
spec:
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  preemption: {{withinClusterQueue: LowerPriority}}
  resourceGroups:
  - coveredResources: ["nvidia.com/gpu", "cpu", "memory"]
    flavors:
    - name: gpu-{ns}
      resources:
      - {{name: "nvidia.com/gpu", nominalQuota: {gpus}}}
      - {{name: "cpu", nominalQuota: 64}}
      - {{name: "memory", nominalQuota: 256Gi}}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {{name: lq, namespace: {ns}}}
spec: {{clusterQueue: cq-{ns}}}
"#
        ),
    )
    .await;
}

/// Removes what [`queue`] and the priority classes made outside the namespace.
async fn cleanup_cluster_scoped(ns: &str) {
    let _ = support::run(support::kubectl().args([
        "delete",
        "--ignore-not-found",
        "--wait=false",
        &format!("clusterqueue/cq-{ns}"),
        &format!("resourceflavor/gpu-{ns}"),
        &format!("priorityclass/low-{ns}"),
        &format!("priorityclass/high-{ns}"),
    ]));
}

async fn trials(client: &Client, ns: &str) -> Vec<Trial> {
    let api: Api<Trial> = Api::namespaced(client.clone(), ns);
    let mut v = api.list(&ListParams::default()).await.expect("list").items;
    v.sort_by_key(|t| t.spec.number);
    v
}

fn count(ts: &[Trial], p: TrialPhase) -> usize {
    ts.iter().filter(|t| t.phase() == p).count()
}

/// GPUs held by pods that are not finished, in `ns`.
async fn gpus_in_use(client: &Client, ns: &str) -> u32 {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default()).await.expect("pods");
    list.items
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            !matches!(phase.as_deref(), Some("Succeeded") | Some("Failed"))
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        })
        .flat_map(|p| p.spec.clone().unwrap().containers)
        .filter_map(|c| c.resources?.limits?.get("nvidia.com/gpu").cloned())
        .map(|q| q.0.parse::<u32>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_of_four_gpus_runs_four_of_eight_trials_then_drains() {
    let _gpus = support::gpus_exclusive().await;
    let (client, ns) = setup("kueue-drain").await;
    queue(&client, &ns.name, 4).await;
    let (_addr, op) = spawn_operator(&client, &ns.name).await;
    let study: Study = serde_yaml::from_str(
        r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {name: drain}
spec:
  objective: {metric: val_loss, direction: minimize}
  parameters:
    - name: lr
      float: {low: 0.0001, high: 0.5, log: true}
  sampler: {random: {seed: 3}}
  maxTrials: 8
  parallelism: 8
  queueName: lq
  metrics: {logs: {format: keyValue, stepKey: epoch}}
  trialTemplate:
    gpus: 1
    metadata:
      annotations: {lopper.dev/fake-exit-after: 15s}
    spec:
      template:
        spec:
          containers:
            - name: fake-logs-digits
              image: trainer:fake
              args: ["--lr=${params.lr}"]
"#,
    )
    .unwrap();
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &study)
        .await
        .expect("create study");

    // 4 admitted, 4 queued; the queued ones' Jobs are suspended and labelled for the queue.
    let ts = wait_for(Duration::from_secs(90), || async {
        let ts = trials(&client, &ns.name).await;
        let admitted = count(&ts, TrialPhase::Running) + count(&ts, TrialPhase::Pending);
        (ts.len() == 8 && count(&ts, TrialPhase::Queued) == 4 && admitted == 4).then_some(ts)
    })
    .await
    .unwrap_or_else(|| {
        let ts = futures::executor::block_on(trials(&client, &ns.name));
        panic!(
            "4 running and 4 queued trials within 90s; phases {:?}",
            ts.iter().map(|t| t.phase()).collect::<Vec<_>>()
        )
    });
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    for t in ts.iter().filter(|t| t.phase() == TrialPhase::Queued) {
        let j = jobs.get(&t.name_any()).await.expect("queued trial's job");
        assert_eq!(j.spec.as_ref().unwrap().suspend, Some(true));
        assert_eq!(j.labels()["kueue.x-k8s.io/queue-name"], "lq");
        assert!(t.status.as_ref().unwrap().start_time.is_none());
    }
    let (ok, out, err) = support::run(support::kubectl().args(["-n", &ns.name, "get", "trials"]));
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" Queued ")).count(),
        4,
        "kubectl get trials shows Queued:\n{out}"
    );
    let st = wait_for(Duration::from_secs(20), || async {
        let s = api.get("drain").await.ok()?;
        let c = s.status.as_ref()?.trials.clone()?;
        (c.queued == 4 && c.running == 8).then_some(c)
    })
    .await
    .expect("study counts 4 queued of 8 running");
    assert_eq!(st.created, 8);

    // The operator restarts while trials wait: nothing is lost or made twice.
    drop(op);
    let (_addr, _op) = spawn_operator(&client, &ns.name).await;

    // Drains: never more than the queue's 4 GPUs, every trial completes.
    let max_gpus = AtomicU32::new(0);
    let done = wait_for(Duration::from_secs(180), || async {
        max_gpus.fetch_max(gpus_in_use(&client, &ns.name).await, Ordering::Relaxed);
        let ts = trials(&client, &ns.name).await;
        (count(&ts, TrialPhase::Completed) == 8).then_some(ts)
    })
    .await;
    let ts = trials(&client, &ns.name).await;
    assert!(
        done.is_some(),
        "all 8 trials completed within 180s; phases {:?}, conditions {:?}",
        ts.iter().map(|t| t.phase()).collect::<Vec<_>>(),
        ts.iter()
            .map(|t| t.status.as_ref().map(|s| s.conditions.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(ts.len(), 8, "no trial made twice");
    let max_gpus = max_gpus.into_inner();
    assert!(max_gpus <= 4, "at most 4 GPUs in use, saw {max_gpus}");
    // Queued time is not GPU time: each trial ran ~15 s once admitted, though the later four
    // waited a whole round first.
    for t in &ts {
        let s = t.status.as_ref().unwrap();
        let ran = s.completion_time.as_ref().unwrap().0.as_second()
            - s.start_time.as_ref().unwrap().0.as_second();
        assert!(ran <= 40, "{} counted {ran}s", t.name_any());
    }
    let s = wait_for(Duration::from_secs(20), || async {
        let s = api.get("drain").await.ok()?;
        (s.status.as_ref()?.trials.as_ref()?.completed == 8).then_some(s)
    })
    .await
    .expect("study counts 8 completed");
    let used = s.status.unwrap().gpu_seconds.unwrap().used;
    assert!(
        used > 0.0 && used <= 8.0 * 40.0,
        "gpu seconds {used} count runs, not waits"
    );
    cleanup_cluster_scoped(&ns.name).await;
    ns.delete(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_higher_priority_workload_preempts_trials_as_on_preemption_says() {
    let _gpus = support::gpus_exclusive().await;
    let (client, ns) = setup("kueue-preempt").await;
    let n = &ns.name;
    queue(&client, n, 2).await;
    apply(
        &client,
        n,
        &format!(
            r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: low-{n}}}
value: 100
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: high-{n}}}
value: 1000
"#
        ),
    )
    .await;
    let (_addr, _op) = spawn_operator(&client, n).await;
    let api: Api<Study> = Api::namespaced(client.clone(), n);
    for (name, outcome) in [("requeue", "Requeue"), ("fail", "Fail")] {
        let s: Study = serde_yaml::from_str(&format!(
            r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: {name}}}
spec:
  objective: {{metric: val_loss}}
  parameters:
    - name: lr
      float: {{low: 0.0001, high: 0.5}}
  maxTrials: 1
  queueName: lq
  priorityClassName: low-{n}
  onPreemption: {outcome}
  metrics: {{push: {{}}}}
  trialTemplate:
    gpus: 1
    spec:
      template:
        spec:
          containers:
            - {{name: trainer, image: trainer:fake}}
"#
        ))
        .unwrap();
        api.create(&PostParams::default(), &s).await.expect("study");
    }
    wait_for(Duration::from_secs(90), || async {
        let ts = trials(&client, n).await;
        (ts.len() == 2 && count(&ts, TrialPhase::Running) == 2).then_some(())
    })
    .await
    .expect("both trials admitted and running");

    // A 2-GPU Job of higher priority in the same queue preempts both.
    let high: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "urgent", "labels": {"kueue.x-k8s.io/queue-name": "lq"}},
        "spec": {"suspend": true, "template": {"spec": {
            "restartPolicy": "Never", "priorityClassName": format!("high-{n}"),
            "containers": [{"name": "c", "image": "x",
                "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), n);
    jobs.create(&PostParams::default(), &high)
        .await
        .expect("job");
    let ts = wait_for(Duration::from_secs(90), || async {
        let ts = trials(&client, n).await;
        let requeued = ts.iter().find(|t| t.spec.study == "requeue")?;
        let failed = ts.iter().find(|t| t.spec.study == "fail")?;
        (requeued.phase() == TrialPhase::Queued && failed.phase() == TrialPhase::Failed)
            .then_some(ts)
    })
    .await
    .unwrap_or_else(|| {
        let ts = futures::executor::block_on(trials(&client, n));
        panic!(
            "preempted within 90s; {:?}",
            ts.iter()
                .map(|t| (t.name_any(), t.phase(), t.status.clone()))
                .collect::<Vec<_>>()
        )
    });
    let requeued = ts.iter().find(|t| t.spec.study == "requeue").unwrap();
    let rs = requeued.status.as_ref().unwrap();
    assert_eq!(rs.preemptions, Some(1));
    assert!(rs.preempted_seconds.unwrap_or(0.0) > 0.0, "its run counted");
    assert!(rs.start_time.is_none(), "queued time is not run time");
    assert!(
        rs.conditions
            .iter()
            .any(|c| c.type_ == "Preempted" && c.status == "True"),
        "{:?}",
        rs.conditions
    );
    let failed = ts.iter().find(|t| t.spec.study == "fail").unwrap();
    let fc = &failed.status.as_ref().unwrap().conditions;
    assert!(
        fc.iter()
            .any(|c| c.type_ == "Failed" && c.reason == "Preempted"),
        "{fc:?}"
    );
    let fname = failed.name_any();
    wait_for(Duration::from_secs(30), || async {
        jobs.get_opt(&fname).await.ok()?.is_none().then_some(())
    })
    .await
    .expect("the failed trial's Job is deleted");

    // The urgent Job leaves: the requeued trial is admitted again and runs.
    jobs.delete("urgent", &DeleteParams::background())
        .await
        .expect("delete urgent");
    let rname = requeued.name_any();
    let tapi: Api<Trial> = Api::namespaced(client.clone(), n);
    wait_for(Duration::from_secs(90), || async {
        let t = tapi.get(&rname).await.ok()?;
        (t.phase() == TrialPhase::Running).then_some(())
    })
    .await
    .expect("the requeued trial runs again");
    cleanup_cluster_scoped(n).await;
    ns.delete(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_jobset_trial_is_pruned_through_push_and_all_its_pods_go() {
    let _gpus = support::gpus_exclusive().await;
    let (client, ns) = setup("kueue-jobset").await;
    let n = &ns.name;
    queue(&client, n, 8).await;
    let (addr, _op) = spawn_operator(&client, n).await;
    let study: Study = serde_yaml::from_str(
        r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {name: multinode}
spec:
  objective: {metric: val_loss, direction: minimize}
  parameters:
    - name: lr
      float: {low: 0.0001, high: 0.5, log: true}
  pruner: {threshold: {upper: 1.0}}
  maxTrials: 1
  queueName: lq
  metrics: {push: {}}
  trialTemplate:
    gpus: 2
    primaryReplicatedJob: leader
    jobSet:
      replicatedJobs:
        - name: leader
          replicas: 1
          template:
            spec:
              parallelism: 2
              completions: 2
              template:
                spec:
                  containers:
                    - {name: trainer, image: trainer:fake, args: ["--lr=${params.lr}", "--role=leader"]}
        - name: workers
          replicas: 2
          template:
            spec:
              template:
                spec:
                  containers:
                    - {name: trainer, image: trainer:fake, args: ["--lr=${params.lr}", "--rank=${trial.number}"]}
"#,
    )
    .unwrap();
    let api: Api<Study> = Api::namespaced(client.clone(), n);
    api.create(&PostParams::default(), &study)
        .await
        .expect("create study");
    let tapi: Api<Trial> = Api::namespaced(client.clone(), n);
    let trial = wait_running(&tapi, "multinode-0", 90).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);
    let sel = ListParams::default().labels(&format!("{TRIAL_LABEL}=multinode-0"));
    for p in &running_pods(&pods, &sel, 4).await {
        trainer_container(p, "multinode-0", "2");
    }
    assert_eq!(gpus_in_use(&client, n).await, 8);
    let js: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), n, &WorkloadKind::JobSet.api_resource());
    let jobset = js.get("multinode-0").await.expect("the trial's JobSet");
    assert_eq!(
        jobset.labels()["kueue.x-k8s.io/queue-name"],
        "lq",
        "queued through Kueue"
    );
    assert!(
        jobset
            .owner_references()
            .iter()
            .any(|o| o.kind == "Trial" && Some(&o.uid) == trial.uid().as_ref())
    );

    // The trainer reports a diverging loss: pruned, the whole JobSet goes.
    push(&client, addr, n, "multinode-0", &[(0, 0.9), (1, 5.0)]).await;
    pruned_and_charged(&api, &tapi, "multinode", "multinode-0", 1, 8.0).await;
    wait_for(Duration::from_secs(60), || async {
        let gone = js.get_opt("multinode-0").await.ok()?.is_none();
        let left = pods.list(&sel).await.ok()?.items.len();
        (gone && left == 0).then_some(())
    })
    .await
    .expect("the JobSet and all 4 pods are gone");
    cleanup_cluster_scoped(n).await;
    ns.delete(&client).await;
}

/// Waits until trial `name` runs; panics with what it is after `secs`.
async fn wait_running(tapi: &Api<Trial>, name: &str, secs: u64) -> Trial {
    wait_for(Duration::from_secs(secs), || async {
        let t = tapi.get_opt(name).await.ok()??;
        (t.phase() == TrialPhase::Running).then_some(t)
    })
    .await
    .unwrap_or_else(|| {
        let t = futures::executor::block_on(tapi.get_opt(name));
        panic!("trial {name} runs within {secs}s: {t:?}")
    })
}

/// Waits until `n` pods match `sel` and all run.
async fn running_pods(pods: &Api<Pod>, sel: &ListParams, n: usize) -> Vec<Pod> {
    wait_for(Duration::from_secs(60), || async {
        let ps = pods.list(sel).await.ok()?.items;
        (ps.len() == n
            && ps
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
        .then_some(ps)
    })
    .await
    .unwrap_or_else(|| panic!("{n} pods of the trial run"))
}

/// A trial pod's first container: its GPUs and the LOPPER_* env of `trial`.
fn trainer_container<'a>(p: &'a Pod, trial: &str, gpus: &str) -> &'a Container {
    let c = &p.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        c.resources.as_ref().unwrap().limits.as_ref().unwrap()["nvidia.com/gpu"].0,
        gpus
    );
    let env: BTreeMap<_, _> = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert_eq!(env["LOPPER_TRIAL"].as_deref(), Some(trial));
    assert!(env.contains_key("LOPPER_TOKEN"));
    c
}

/// Waits until `trial` is pruned at `step` and its study counts it; checks that the study
/// charged `gpus` GPUs for the time it ran.
async fn pruned_and_charged(
    api: &Api<Study>,
    tapi: &Api<Trial>,
    study: &str,
    trial: &str,
    step: i64,
    gpus: f64,
) {
    let t = wait_for(Duration::from_secs(30), || async {
        let t = tapi.get(trial).await.ok()?;
        (t.phase() == TrialPhase::Pruned).then_some(t)
    })
    .await
    .expect("pruned");
    let s = t.status.as_ref().unwrap();
    assert_eq!(s.pruned_at_step, Some(step));
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Pruned" && c.status == "True" && !c.message.is_empty()),
        "{:?}",
        s.conditions
    );
    let st = wait_for(Duration::from_secs(20), || async {
        let s = api.get(study).await.ok()?.status?;
        (s.trials.as_ref()?.pruned == 1).then_some(s)
    })
    .await
    .expect("study counts the pruned trial");
    let used = st.gpu_seconds.unwrap().used;
    let ran = (s.completion_time.as_ref().unwrap().0.as_second()
        - s.start_time.as_ref().unwrap().0.as_second()) as f64;
    assert!(
        (used - gpus * ran).abs() <= gpus * 2.0,
        "gpu seconds {used} = {gpus} GPUs × {ran}s"
    );
}

/// Posts `(step, val_loss)` reports as the trainer of `trial` would (token from its Secret).
async fn push(client: &Client, addr: SocketAddr, ns: &str, trial: &str, points: &[(i64, f64)]) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let token = String::from_utf8(
        secrets.get(trial).await.expect("token").data.unwrap()["token"]
            .0
            .clone(),
    )
    .unwrap();
    let url = format!(
        "http://{addr}{}",
        lopper::metrics::push::report_path(ns, trial)
    );
    let http = reqwest::Client::new();
    for (step, v) in points {
        let r = http
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"step": step, "metrics": {"val_loss": v}}))
            .send()
            .await
            .expect("report");
        assert!(r.status().is_success(), "{}", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trainjob_trial_runs_through_the_trainer_and_is_pruned_whole() {
    let _gpus = support::gpus_exclusive().await;
    let (client, ns) = setup("kueue-trainjob").await;
    let n = &ns.name;
    queue(&client, n, 8).await;
    let (addr, _op) = spawn_operator(&client, n).await;
    let study: Study = serde_yaml::from_str(
        r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {name: tj}
spec:
  objective: {metric: val_loss, direction: minimize}
  parameters:
    - name: lr
      float: {low: 0.0001, high: 0.5, log: true}
  pruner: {threshold: {upper: 1.0}}
  maxTrials: 1
  queueName: lq
  metrics: {push: {}}
  trialTemplate:
    gpus: 2
    trainJob:
      runtimeRef: {name: torch-distributed}
      trainer:
        numNodes: 2
        image: trainer:fake
        command: [torchrun, train.py]
        args: ["--lr=${params.lr}", "--run=${trial.name}"]
"#,
    )
    .unwrap();
    let api: Api<Study> = Api::namespaced(client.clone(), n);
    api.create(&PostParams::default(), &study)
        .await
        .expect("create study");
    let tapi: Api<Trial> = Api::namespaced(client.clone(), n);
    wait_running(&tapi, "tj-0", 120).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);
    let sel = ListParams::default().labels("jobset.sigs.k8s.io/jobset-name=tj-0");
    for p in &running_pods(&pods, &sel, 2).await {
        let c = trainer_container(p, "tj-0", "2");
        assert!(
            c.args.iter().flatten().any(|a| a == "--run=tj-0"),
            "{:?}",
            c.args
        );
    }
    let tj: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), n, &WorkloadKind::TrainJob.api_resource());
    assert_eq!(
        tj.get("tj-0").await.expect("the trial's TrainJob").labels()["kueue.x-k8s.io/queue-name"],
        "lq"
    );

    push(&client, addr, n, "tj-0", &[(0, 0.8), (1, 3.0)]).await;
    pruned_and_charged(&api, &tapi, "tj", "tj-0", 1, 4.0).await;
    let js: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), n, &WorkloadKind::JobSet.api_resource());
    wait_for(Duration::from_secs(60), || async {
        let gone =
            tj.get_opt("tj-0").await.ok()?.is_none() && js.get_opt("tj-0").await.ok()?.is_none();
        (gone && pods.list(&sel).await.ok()?.items.is_empty()).then_some(())
    })
    .await
    .expect("the TrainJob, its JobSet and both pods are gone");
    cleanup_cluster_scoped(n).await;
    ns.delete(&client).await;
}
