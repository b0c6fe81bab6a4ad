//! Shared helpers for integration tests that need the local control plane (`e2e/cluster.sh`).
//!
//! `cluster()` starts the cluster once if it is not reachable (serialised with `flock`, so
//! parallel test binaries never start it twice) and returns a client for its admin user.
//! Every test works in its own namespace ([`TestNamespace`]) so tests run in parallel.
#![allow(dead_code)]

pub mod long_curves;
pub mod operator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("LOPPER_E2E_DIR") {
        Some(d) => PathBuf::from(d).join("kubeconfig"),
        None => repo_root().join("e2e/.cluster/kubeconfig"),
    }
}

fn cluster_script() -> PathBuf {
    repo_root().join("e2e/cluster.sh")
}

/// Brings the cluster up unless it already answers; idempotent and safe across processes.
pub fn ensure_cluster_up() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let lock = repo_root().join("e2e/.cluster.lock");
        let status = Command::new("flock")
            .arg(&lock)
            .arg(cluster_script())
            .arg("up")
            .status()
            .expect("run flock e2e/cluster.sh up");
        assert!(
            status.success(),
            "e2e/cluster.sh up failed: see e2e/.cluster/logs/"
        );
    });
}

/// A client for the local cluster's admin user, starting the cluster if needed.
pub async fn cluster() -> Client {
    ensure_cluster_up();
    client_from_kubeconfig(&kubeconfig_path()).await
}

pub async fn client_from_kubeconfig(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig to config");
    Client::try_from(config).expect("client")
}

/// The folder of the pinned binaries (kubectl, helm, …) built by `e2e/cluster.sh`.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(cluster_script())
            .arg("bin-dir")
            .output()
            .expect("e2e/cluster.sh bin-dir");
        assert!(out.status.success(), "e2e/cluster.sh bin-dir failed");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// `kubectl` against the local cluster.
pub fn kubectl() -> Command {
    let mut c = Command::new(bin("kubectl"));
    c.env("KUBECONFIG", kubeconfig_path());
    c
}

/// Runs a command, returning (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("spawn command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The path of the `lopper` binary built for this test run.
pub fn lopper_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lopper"))
}

/// Server-side applies every CRD under `crds/` and waits until each is Established.
pub async fn apply_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(repo_root().join("crds"))
        .expect("read crds/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("read crd");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).expect("yaml document");
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition =
                serde_yaml::from_value(value).expect("parse CRD yaml");
            let name = crd.metadata.name.clone().expect("crd name");
            api.patch(
                &name,
                &PatchParams::apply("lopper-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
            names.push(name);
        }
    }
    for name in names {
        wait_for(Duration::from_secs(30), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await
        .unwrap_or_else(|| panic!("CRD {name} not Established in 30s"));
    }
}

/// Polls `f` every 100 ms until it yields `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A namespace of its own for one test, deleted (in the background) when dropped.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> TestNamespace {
        use rand::Rng;
        let suffix: u32 = rand::rng().random_range(0..1_000_000);
        let name = format!("{prefix}-{suffix:06}");
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"lopper.dev/test": "true"}}
        }))
        .expect("namespace object");
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        // The service-account controller creates `default` asynchronously; pods need it.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait_for(Duration::from_secs(30), || {
            let sa = sa.clone();
            async move { sa.get_opt("default").await.ok().flatten() }
        })
        .await
        .unwrap_or_else(|| panic!("no default ServiceAccount in {name} after 30s"));
        TestNamespace { name }
    }

    pub async fn delete(&self, client: &Client) {
        let api: Api<Namespace> = Api::all(client.clone());
        let _ = api.delete(&self.name, &DeleteParams::background()).await;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await; kubectl works from any context, and --wait=false keeps it quick.
        let _ = kubectl()
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

/// The cluster has 8 fake GPUs in all. Tests that use GPUs hold `gpus_shared()`; a test that
/// needs the whole capacity (to count Running vs Pending) holds `gpus_exclusive()`.
fn gpu_lock() -> &'static RwLock<()> {
    static LOCK: OnceLock<RwLock<()>> = OnceLock::new();
    LOCK.get_or_init(|| RwLock::new(()))
}

pub async fn gpus_shared() -> RwLockReadGuard<'static, ()> {
    gpu_lock().read().await
}

pub async fn gpus_exclusive() -> RwLockWriteGuard<'static, ()> {
    gpu_lock().write().await
}

/// Kueue and the JobSet controller on the local cluster (`e2e/cluster.sh addons-up`: started
/// once, a no-op when they run), after the cluster itself.
pub fn ensure_kueue_up() {
    static UP: OnceLock<()> = OnceLock::new();
    ensure_cluster_up();
    UP.get_or_init(|| {
        let lock = repo_root().join("e2e/.cluster.lock");
        let status = Command::new("flock")
            .arg(&lock)
            .arg(cluster_script())
            .arg("addons-up")
            .status()
            .expect("run flock e2e/cluster.sh addons-up");
        assert!(
            status.success(),
            "e2e/cluster.sh addons-up failed: see e2e/.cluster/logs/kueue.log, jobset-controller.log"
        );
    });
}
