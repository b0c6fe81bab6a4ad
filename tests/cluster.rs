//! Proof that the local control plane is a real one: pinned version, the real scheduler
//! enforcing 8 fake GPUs, kwok finishing annotated pods, the garbage collector at work.

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use support::{TestNamespace, cluster, gpus_exclusive, wait_for};

const PINNED: &str = "v1.35.4";

fn gpu_job(name: &str, pods: i32, annotations: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": pods, "completions": pods, "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "trainer", "image": "example.invalid/trainer:1",
                        "resources": {"limits": {"nvidia.com/gpu": "1"}}
                    }]
                }
            }
        }
    }))
    .expect("job object")
}

async fn pod_phases(pods: &Api<Pod>, job: &str) -> Vec<String> {
    let lp = ListParams::default().labels(&format!("job-name={job}"));
    pods.list(&lp)
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.status.and_then(|s| s.phase).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn api_server_reports_the_pinned_version() {
    let client = cluster().await;
    let info = client.apiserver_version().await.expect("/version");
    assert_eq!(info.git_version, PINNED);
    let (ok, out, err) = support::run(support::kubectl().args(["version", "-o", "json"]));
    assert!(ok, "kubectl version failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("kubectl version json");
    assert_eq!(v["clientVersion"]["gitVersion"], PINNED);
    assert_eq!(v["serverVersion"]["gitVersion"], PINNED);
}

#[tokio::test]
async fn scheduler_runs_eight_one_gpu_pods_and_leaves_two_pending() {
    let client = cluster().await;
    let _gpus = gpus_exclusive().await;
    let ns = TestNamespace::new(&client, "cluster-gpus").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    jobs.create(&PostParams::default(), &gpu_job("ten", 10, json!({})))
        .await
        .expect("create job");

    let settled = wait_for(Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let phases = pod_phases(&pods, "ten").await;
            let running = phases.iter().filter(|p| *p == "Running").count();
            let pending = phases.iter().filter(|p| *p == "Pending").count();
            (running == 8 && pending == 2).then_some(phases)
        }
    })
    .await;
    let phases = pod_phases(&pods, "ten").await;
    assert!(
        settled.is_some(),
        "expected 8 Running + 2 Pending, got {phases:?}"
    );
    // Give the scheduler a moment more: nothing beyond 8 may start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let phases = pod_phases(&pods, "ten").await;
    assert_eq!(
        phases.iter().filter(|p| *p == "Running").count(),
        8,
        "{phases:?}"
    );
    jobs.delete("ten", &DeleteParams::background())
        .await
        .expect("delete job");
    wait_for(Duration::from_secs(60), || {
        let pods = pods.clone();
        async move { pod_phases(&pods, "ten").await.is_empty().then_some(()) }
    })
    .await
    .expect("pods of the deleted job released");
    ns.delete(&client).await;
}

#[tokio::test]
async fn annotated_pod_succeeds_and_its_job_completes() {
    let client = cluster().await;
    let _gpus = support::gpus_shared().await;
    let ns = TestNamespace::new(&client, "cluster-exit").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let job = gpu_job("quick", 1, json!({"lopper.dev/fake-exit-after": "2s"}));
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    let done = wait_for(Duration::from_secs(60), || {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get("quick").await.ok()?;
            let s = j.status?;
            let complete = s
                .conditions?
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True");
            (complete && s.succeeded == Some(1)).then_some(())
        }
    })
    .await;
    assert!(
        done.is_some(),
        "job did not complete: {:?}",
        jobs.get("quick").await.ok().and_then(|j| j.status)
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    assert_eq!(
        pod_phases(&pods, "quick").await,
        vec!["Succeeded".to_string()]
    );
    ns.delete(&client).await;
}

#[tokio::test]
async fn nonzero_fake_exit_code_fails_the_job() {
    let client = cluster().await;
    let _gpus = support::gpus_shared().await;
    let ns = TestNamespace::new(&client, "cluster-fail").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let job = gpu_job(
        "crash",
        1,
        json!({"lopper.dev/fake-exit-after": "1s", "lopper.dev/fake-exit-code": "3"}),
    );
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    let failed = wait_for(Duration::from_secs(60), || {
        let jobs = jobs.clone();
        async move {
            let s = jobs.get("crash").await.ok()?.status?;
            s.conditions?
                .iter()
                .any(|c| c.type_ == "Failed" && c.status == "True")
                .then_some(())
        }
    })
    .await;
    assert!(failed.is_some(), "job did not fail");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    assert_eq!(pod_phases(&pods, "crash").await, vec!["Failed".to_string()]);
    ns.delete(&client).await;
}

#[tokio::test]
async fn deleting_a_job_in_background_removes_its_pods() {
    let client = cluster().await;
    let _gpus = support::gpus_shared().await;
    let ns = TestNamespace::new(&client, "cluster-gc").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    jobs.create(&PostParams::default(), &gpu_job("gc", 2, json!({})))
        .await
        .expect("create job");
    wait_for(Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let phases = pod_phases(&pods, "gc").await;
            (phases.len() == 2 && phases.iter().all(|p| p == "Running")).then_some(())
        }
    })
    .await
    .expect("2 running pods");
    jobs.delete("gc", &DeleteParams::background())
        .await
        .expect("delete");
    let gone = wait_for(Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let lp = ListParams::default().labels("job-name=gc");
            pods.list(&lp).await.ok()?.items.is_empty().then_some(())
        }
    })
    .await;
    assert!(
        gone.is_some(),
        "garbage collector left pods of the deleted job"
    );
    ns.delete(&client).await;
}
