//! Helm 4 (`e2e/helm.sh`, pinned `helm.sh/helm/v4`) with the chart on the local control plane and
//! the image `e2e/image.sh` builds: `helm install --wait` with that image reference and what a user
//! checks on the live objects (the Deployment's security context, probes and image user, RBAC as
//! the ServiceAccount, the PodDisruptionBudget, the ServiceMonitor, the values schema); then the
//! operator, run from the image out of the cluster as the chart's ServiceAccount, runs a study
//! through `helm upgrade` to a chart whose Study CRD adds an optional field; then `helm uninstall`
//! leaves the CRDs and the Studies in place. kwok plays the pods, so nothing runs in them.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{TestNamespace, cluster, kubeconfig_path, kubectl, repo_root, run};

/// The pinned helm 4, built once (cached) by `e2e/helm.sh`.
fn helm() -> Command {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    let path = HELM.get_or_init(|| {
        let (ok, out, err) = run(Command::new("bash").arg(repo_root().join("e2e/helm.sh")));
        assert!(ok, "bash e2e/helm.sh: {err}");
        PathBuf::from(out.trim())
    });
    let mut c = Command::new(path);
    c.env("KUBECONFIG", kubeconfig_path());
    c
}

/// `bash e2e/image.sh build` → its `key=value` lines.
fn image(key: &str) -> String {
    static FIELDS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let fields = FIELDS.get_or_init(|| {
        let (ok, out, err) = run(Command::new("bash")
            .arg(repo_root().join("e2e/image.sh"))
            .arg("build"));
        assert!(ok, "bash e2e/image.sh build: {err}");
        out.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("e2e/image.sh printed no {key}="))
}

fn ok(cmd: &mut Command, what: &str) -> String {
    let (ok, out, err) = run(cmd);
    assert!(ok, "{what}: {out}\n{err}");
    out
}

fn kubectl_json(args: &[&str]) -> Value {
    let out = ok(kubectl().args(args).args(["-o", "json"]), "kubectl get");
    serde_json::from_str(&out).expect("kubectl JSON")
}

fn kubectl_apply_file(path: &Path, extra: &[&str]) {
    ok(
        kubectl()
            .args(["apply", "--server-side", "--force-conflicts"])
            .args(extra)
            .arg("-f")
            .arg(path),
        "kubectl apply",
    );
}

fn write_temp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

fn can_i(sa: &str, args: &[&str]) -> bool {
    let (_, out, _) = run(kubectl()
        .args(["auth", "can-i"])
        .args(args)
        .args(["--as", sa]));
    out.trim() == "yes"
}

/// A ServiceMonitor CRD (schema-less) so the chart's ServiceMonitor can be installed; removed
/// afterwards only if this test created it.
struct ServiceMonitorCrd {
    created: bool,
}

impl ServiceMonitorCrd {
    fn ensure(dir: &Path) -> ServiceMonitorCrd {
        let (exists, _, _) =
            run(kubectl().args(["get", "crd", "servicemonitors.monitoring.coreos.com"]));
        if exists {
            return ServiceMonitorCrd { created: false };
        }
        let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
  labels: {lopper.dev/test: "true"}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;
        kubectl_apply_file(&write_temp(dir, "servicemonitor-crd.yaml", crd), &[]);
        ok(
            kubectl().args([
                "wait",
                "--for=condition=Established",
                "--timeout=30s",
                "crd/servicemonitors.monitoring.coreos.com",
            ]),
            "ServiceMonitor CRD established",
        );
        ServiceMonitorCrd { created: true }
    }
}

impl Drop for ServiceMonitorCrd {
    fn drop(&mut self) {
        if self.created {
            let _ = kubectl()
                .args([
                    "delete",
                    "crd",
                    "servicemonitors.monitoring.coreos.com",
                    "--wait=false",
                ])
                .output();
        }
    }
}

/// Puts the repository's CRDs back when dropped, also when the test fails: the cluster is shared,
/// and re-applying them with this test's field manager drops `owner`, which only it set.
struct RestoreCrds;

impl Drop for RestoreCrds {
    fn drop(&mut self) {
        let _ = kubectl()
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=lopper-helm-test",
                "-f",
            ])
            .arg(repo_root().join("charts/lopper/crds"))
            .output();
    }
}

/// The operator from the image (`e2e/image.sh sandbox`), killed when dropped.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn assert_alive(&mut self) {
        if let Some(s) = self.child.try_wait().expect("try_wait") {
            panic!("the operator exited ({s}):\n{}", self.log());
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubeconfig for the chart's ServiceAccount: the cluster of the admin kubeconfig, a token
/// from the TokenRequest API.
fn service_account_kubeconfig(dir: &Path, ns: &str, sa: &str) -> PathBuf {
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(kubeconfig_path()).expect("kubeconfig"))
            .expect("kubeconfig YAML");
    let cluster = &admin["clusters"][0]["cluster"];
    let token = ok(
        kubectl().args(["create", "token", sa, "-n", ns, "--duration=1h"]),
        "kubectl create token",
    );
    let kc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {
            "server": cluster["server"].as_str().expect("server"),
            "certificate-authority-data": cluster["certificate-authority-data"].as_str().expect("CA"),
        }}],
        "users": [{"name": sa, "user": {"token": token.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "e2e", "user": sa, "namespace": ns}}],
        "current-context": "sa",
    });
    write_temp(dir, "sa.kubeconfig", &kc.to_string())
}

fn study(name: &str, trials: u32, exit_after: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: {name}}}
spec:
  objective: {{metric: val_loss, direction: minimize}}
  parameters:
    - name: lr
      float: {{low: 0.0001, high: 0.5, log: true}}
  sampler: {{random: {{seed: 3}}}}
  maxTrials: {trials}
  parallelism: 2
  metrics: {{logs: {{format: keyValue, stepKey: epoch}}}}
{extra_spec}  trialTemplate:
    spec:
      template:
        metadata:
          annotations: {{lopper.dev/fake-exit-after: {exit_after}}}
        spec:
          restartPolicy: Never
          containers:
            - name: fake-logs-digits
              image: trainer:fake
"#
    )
}

fn study_status(ns: &str, name: &str) -> Value {
    kubectl_json(&["get", "study", name, "-n", ns])["status"].clone()
}

fn trials_of(ns: &str, study: &str) -> Vec<Value> {
    kubectl_json(&[
        "get",
        "trials",
        "-n",
        ns,
        "-l",
        &format!("lopper.dev/study={study}"),
    ])["items"]
        .as_array()
        .expect("items")
        .clone()
}

fn phase(v: &Value) -> &str {
    v["status"]["phase"].as_str().unwrap_or("")
}

/// The chart copied with its Study CRD given one more optional field, `spec.owner`, and a new
/// chart version: what a release that extends the API looks like.
fn chart_with_optional_field(dir: &Path) -> PathBuf {
    let chart = dir.join("lopper");
    ok(
        Command::new("cp")
            .arg("-r")
            .arg(repo_root().join("charts/lopper"))
            .arg(&chart),
        "copy the chart",
    );
    let crd_path = chart.join("crds/study.yaml");
    let mut crd: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&crd_path).expect("study CRD")).expect("CRD");
    for version in crd["spec"]["versions"].as_sequence_mut().expect("versions") {
        let props = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            .as_mapping_mut()
            .expect("spec properties");
        props.insert(
            "owner".into(),
            serde_yaml::from_str("{type: string, description: 'Who to ask about this study.'}")
                .expect("field"),
        );
    }
    std::fs::write(&crd_path, serde_yaml::to_string(&crd).expect("CRD YAML")).expect("write CRD");
    let chart_yaml = chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).expect("Chart.yaml");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                "version: 99.0.0-owner".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&chart_yaml, text).expect("write Chart.yaml");
    chart
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm4_install_upgrade_uninstall_with_the_built_image() {
    let admin = cluster().await;
    support::apply_crds(&admin).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let release = TestNamespace::new(&admin, "helm4").await;
    let studies = TestNamespace::new(&admin, "helm4-s").await;
    let rel = release.name.as_str();
    let sns = studies.name.as_str();
    let (repository, tag) = (image("repository"), image("tag"));
    let image_ref = image("ref");
    let _sm = ServiceMonitorCrd::ensure(tmp.path());

    // -- The values schema refuses bad values, naming them, before anything is created.
    for (set, key) in [
        ("logFormat=xml", "/logFormat"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ] {
        let (good, out, err) = run(helm()
            .args([
                "install",
                "bad",
                "charts/lopper",
                "-n",
                rel,
                "--skip-crds",
                "--set",
                set,
            ])
            .current_dir(repo_root()));
        assert!(!good, "helm install accepted {set}: {out}");
        assert!(err.contains(key), "the error does not name {key}: {err}");
    }

    // -- Install with the image's reference; --wait: the (kwok) pods become Ready.
    // --skip-crds: the CRDs are cluster-wide and already applied (support::apply_crds) by the
    // tests sharing this cluster; helm 4 server-side applies a chart's crds/ even when they
    // exist, and fails on a field another manager set differently.
    let values = format!(
        "image: {{repository: {repository}, tag: {tag}, pullPolicy: Never}}\n\
         watchNamespaces: [{sns}]\nserviceMonitor: {{enabled: true}}\n"
    );
    let values_file = write_temp(tmp.path(), "values.yaml", &values);
    ok(
        helm()
            .args([
                "install",
                "lopper",
                "charts/lopper",
                "-n",
                rel,
                "--skip-crds",
                "--wait",
                "--timeout",
                "120s",
                "-f",
            ])
            .arg(&values_file)
            .current_dir(repo_root()),
        "helm install",
    );

    let deploy = kubectl_json(&["get", "deployment", "lopper", "-n", rel]);
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        image_ref.as_str(),
        "the Deployment runs the built image"
    );
    assert_eq!(deploy["status"]["readyReplicas"], 2, "{}", deploy["status"]);
    // The image's USER and the pod's runAsUser agree, so runAsNonRoot passes.
    let user = ok(
        Command::new("bash").arg("-c").arg(format!(
            "tar -xOf {a} index.json | jq -r '.manifests[0].digest' | sed 's#:#/#' \
             | xargs -I{{}} tar -xOf {a} blobs/{{}} | jq -r .config.digest | sed 's#:#/#' \
             | xargs -I{{}} tar -xOf {a} blobs/{{}} | jq -r .config.User",
            a = image("archive")
        )),
        "image user",
    );
    assert_eq!(user.trim(), "65532:65532");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsGroup"], 65532);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let tmp_mount = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("/tmp mounted");
    let tmp_volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == tmp_mount["name"])
        .expect("the /tmp volume");
    assert!(tmp_volume.get("emptyDir").is_some(), "{tmp_volume}");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&format!("--namespace={sns}").as_str()),
        "{args:?}"
    );

    // PDB over the Deployment's pods; ServiceMonitor on the Service's port.
    let pdb = kubectl_json(&["get", "pdb", "lopper", "-n", rel]);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    let svc = kubectl_json(&["get", "service", "lopper", "-n", rel]);
    let sm = kubectl_json(&["get", "servicemonitor", "lopper", "-n", rel]);
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }

    // RBAC as the ServiceAccount: what the operator needs in the studies' namespace, nothing in
    // the release namespace but its Lease, and no Secret listing anywhere.
    let sa = format!("system:serviceaccount:{rel}:lopper");
    for args in [
        &["create", "jobs.batch", "-n", sns][..],
        &["delete", "jobs.batch", "-n", sns],
        &["get", "pods", "--subresource=log", "-n", sns],
        &[
            "patch",
            "trials.lopper.dev",
            "--subresource=status",
            "-n",
            sns,
        ],
        &["create", "trials.lopper.dev", "-n", sns],
        &[
            "update",
            "leases.coordination.k8s.io/lopper-controller",
            "-n",
            rel,
        ],
    ] {
        assert!(
            can_i(&sa, args),
            "the chart's ServiceAccount cannot {args:?}"
        );
    }
    for args in [
        &["list", "secrets", "-n", sns][..],
        &["create", "jobs.batch", "-n", rel],
        &["create", "jobs.batch", "-n", "default"],
        &["delete", "studies.lopper.dev", "-n", sns],
        &["update", "leases.coordination.k8s.io/other", "-n", rel],
        &["create", "pods", "-n", sns],
    ] {
        assert!(!can_i(&sa, args), "the chart's ServiceAccount may {args:?}");
    }

    // -- The operator from the image, as the chart's ServiceAccount, with leader election on
    // the chart's Lease, out of the cluster (kwok runs no containers).
    let kc = service_account_kubeconfig(tmp.path(), rel, "lopper");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let log = tmp.path().join("operator.log");
    let file = std::fs::File::create(&log).expect("log");
    let child = Command::new("bash")
        .arg(repo_root().join("e2e/image.sh"))
        .args(["sandbox", "-k"])
        .arg(&kc)
        .args([
            "--",
            "controller",
            &format!("--namespace={sns}"),
            &format!("--lease-namespace={rel}"),
            "--lease-name=lopper-controller",
            &format!("--port={port}"),
            "--log-format=text",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup"))
        .stderr(file)
        .spawn()
        .expect("spawn the operator");
    let mut op = Operator { child, log };

    let before = write_temp(tmp.path(), "before.yaml", &study("before", 4, "15s", ""));
    ok(
        kubectl().args(["apply", "-n", sns, "-f"]).arg(&before),
        "apply study",
    );
    // Upgrade while the study runs: a trial exists and the study is not finished.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        op.assert_alive();
        let trials = trials_of(sns, "before");
        if trials.iter().any(|t| phase(t) == "Running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no trial Running in 120 s:\n{}",
            op.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // What the upgrade must leave alone: the specs of the Study and of its Trials so far.
    let spec_before = kubectl_json(&["get", "study", "before", "-n", sns])["spec"].clone();
    let trials_before: Vec<(Value, Value)> = trials_of(sns, "before")
        .into_iter()
        .map(|t| (t["metadata"]["name"].clone(), t["spec"].clone()))
        .collect();
    let holder = kubectl_json(&["get", "lease", "lopper-controller", "-n", rel]);
    assert!(
        holder["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "the operator holds the chart's Lease: {holder}"
    );

    // -- Upgrade as docs/install.md says: the new CRDs first, then the release.
    let new_chart = chart_with_optional_field(tmp.path());
    let restore = RestoreCrds;
    kubectl_apply_file(
        &new_chart.join("crds"),
        &["--field-manager=lopper-helm-test"],
    );
    ok(
        helm().args(["upgrade", "lopper"]).arg(&new_chart).args([
            "-n",
            rel,
            "--reuse-values",
            "--wait",
            "--timeout",
            "120s",
        ]),
        "helm upgrade",
    );
    let history = ok(
        helm().args(["history", "lopper", "-n", rel, "-o", "json"]),
        "helm history",
    );
    assert!(history.contains("lopper-99.0.0-owner"), "{history}");
    let s = study_status(sns, "before");
    assert_ne!(
        s["phase"], "Succeeded",
        "the study finished before the upgrade: {s}"
    );
    // Studies and Trials written before the upgrade read back as they were.
    assert_eq!(
        kubectl_json(&["get", "study", "before", "-n", sns])["spec"],
        spec_before
    );
    let trials_now = trials_of(sns, "before");
    for (name, spec) in &trials_before {
        let now = trials_now
            .iter()
            .find(|t| &t["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("Trial {name} gone after the upgrade"));
        assert_eq!(&now["spec"], spec, "Trial {name} changed");
    }
    // The new optional field is accepted and kept; the running operator (which predates it)
    // ignores it and runs that study too.
    let after = write_temp(
        tmp.path(),
        "after.yaml",
        &study("after", 1, "2s", "  owner: team-a\n"),
    );
    ok(
        kubectl().args(["apply", "-n", sns, "-f"]).arg(&after),
        "apply study with the new field",
    );
    let spec = kubectl_json(&["get", "study", "after", "-n", sns])["spec"].clone();
    assert_eq!(
        spec["owner"], "team-a",
        "the new field was not stored: {spec}"
    );

    for (name, n) in [("before", 4), ("after", 1)] {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            op.assert_alive();
            let s = study_status(sns, name);
            if s["phase"] == "Succeeded" || s["phase"] == "Failed" {
                let trials = trials_of(sns, name);
                assert_eq!(s["phase"], "Succeeded", "{name}: {s}\n{}", op.log());
                assert_eq!(trials.len(), n, "{name}");
                assert!(trials.iter().all(|t| phase(t) == "Completed"), "{trials:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not finished in 180 s: {s}\n{}",
                op.log()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    drop(op);

    // -- Uninstall: the release's objects go; CRDs and Studies stay (docs/install.md, 4.).
    ok(
        helm().args(["uninstall", "lopper", "-n", rel, "--wait"]),
        "helm uninstall",
    );
    let (gone, _, _) = run(kubectl().args(["get", "deployment", "lopper", "-n", rel]));
    assert!(!gone, "the Deployment survived helm uninstall");
    for crd in [
        "studies.lopper.dev",
        "trials.lopper.dev",
        "curvechunks.lopper.dev",
    ] {
        let (kept, _, err) = run(kubectl().args(["get", "crd", crd]));
        assert!(kept, "helm uninstall deleted CRD {crd}: {err}");
    }
    for name in ["before", "after"] {
        assert_eq!(study_status(sns, name)["phase"], "Succeeded", "{name} kept");
    }
    assert_eq!(trials_of(sns, "before").len(), 4, "Trials kept");

    drop(restore);
    studies.delete(&admin).await;
    release.delete(&admin).await;
}
