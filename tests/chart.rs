//! The Helm chart on the real local control plane: `helm lint`, `helm template` applied
//! with server-side dry run, values rejected by `values.schema.json`, chart CRDs equal to
//! `lopper crd`, samples valid against the CRDs, and the chart's RBAC checked with
//! `kubectl auth can-i` — both what it allows and what it must not allow.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_yaml::Value;
use support::{TestNamespace, cluster, kubeconfig_path, kubectl, repo_root, run};

fn chart_dir() -> PathBuf {
    repo_root().join("charts/lopper")
}

/// The pinned `helm`, built by `e2e/cluster.sh` with the rest of the control plane.
fn helm() -> Command {
    let helm = support::bin("helm");
    if !helm.exists() {
        support::ensure_cluster_up();
    }
    let mut c = Command::new(helm);
    c.env("KUBECONFIG", kubeconfig_path());
    c
}

/// Writes `yaml` to a temporary values file (kept alive by the returned guard).
fn values_file(yaml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp values file");
    f.write_all(yaml.as_bytes()).expect("write values");
    f
}

/// `helm template lopper charts/lopper -n NS -f VALUES [extra...]` → (ok, stdout, stderr).
fn helm_template(namespace: &str, values: &str, extra: &[&str]) -> (bool, String, String) {
    let f = values_file(values);
    run(helm()
        .args(["template", "lopper"])
        .arg(chart_dir())
        .args(["--namespace", namespace, "-f"])
        .arg(f.path())
        .args(extra))
}

fn render(namespace: &str, values: &str, extra: &[&str]) -> String {
    let (ok, out, err) = helm_template(namespace, values, extra);
    assert!(ok, "helm template failed with values {values:?}:\n{err}");
    out
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn find<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `kubectl <args>` with `stdin` piped in.
fn kubectl_stdin(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write kubectl stdin");
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every rule of every (Cluster)Role in a rendering: no `*` anywhere.
fn assert_no_wildcards(docs: &[Value]) {
    for doc in docs
        .iter()
        .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
    {
        for rule in doc["rules"].as_sequence().expect("rules") {
            for field in [
                "apiGroups",
                "resources",
                "verbs",
                "resourceNames",
                "nonResourceURLs",
            ] {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "wildcard in {} {}: {rule:?}",
                    kind(doc),
                    name(doc)
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Static checks (the helm binary, no API server needed)
// ---------------------------------------------------------------------------------------------

#[test]
fn helm_lint_is_clean() {
    for values in [
        "{}",
        "watchNamespaces: [team-a, team-b]\nlogFormat: text\n",
        "replicaCount: 1\nleaderElection: {enabled: false}\nserviceMonitor: {enabled: true}\n",
    ] {
        let f = values_file(values);
        let (ok, out, err) = run(helm()
            .args(["lint", "--strict", "--namespace", "lopper-system"])
            .arg(chart_dir())
            .arg("-f")
            .arg(f.path()));
        assert!(ok, "helm lint failed with {values:?}:\n{out}\n{err}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "helm lint is not clean with {values:?}:\n{out}"
        );
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn deployment_is_hardened_and_wired_to_the_operator_flags() {
    let docs = yaml_docs(&render("lopper-system", "{}", &[]));
    let deploy = find(&docs, "Deployment");
    assert_eq!(deploy.len(), 1);
    let spec = &deploy[0]["spec"];
    assert_eq!(spec["replicas"].as_i64(), Some(2));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(pod["serviceAccountName"].as_str(), Some("lopper"));
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(c["ports"][0]["containerPort"].as_i64(), Some(8080));
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let args = strings(&c["args"]);
    for want in [
        "controller",
        "--port=8080",
        "--log-format=json",
        "--leader-election=true",
        "--lease-namespace=lopper-system",
        "--lease-name=lopper-controller",
        "--report-url=http://lopper.lopper-system.svc:8080",
        "--sidecar-image=lopper:0.1.0",
    ] {
        assert!(
            args.iter().any(|a| a == want),
            "{want} missing from {args:?}"
        );
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--namespace")),
        "{args:?}"
    );

    let svc = find(&docs, "Service");
    assert_eq!(svc[0]["spec"]["ports"][0]["port"].as_i64(), Some(8080));
    assert!(
        find(&docs, "ServiceMonitor").is_empty(),
        "ServiceMonitor is opt-in"
    );
    let with_sm = yaml_docs(&render(
        "lopper-system",
        "serviceMonitor: {enabled: true, labels: {release: prom}}",
        &[],
    ));
    let sm = find(&with_sm, "ServiceMonitor");
    assert_eq!(sm.len(), 1);
    assert_eq!(
        sm[0]["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );

    // Cluster-wide by default: a ClusterRole, and the Lease Role in the release namespace only.
    assert_eq!(find(&docs, "ClusterRole").len(), 1);
    assert_eq!(find(&docs, "ClusterRoleBinding").len(), 1);
    let roles = find(&docs, "Role");
    assert_eq!(roles.len(), 1, "only the leader-election Role");
    assert_eq!(
        roles[0]["metadata"]["namespace"].as_str(),
        Some("lopper-system")
    );
    assert_eq!(
        strings(&roles[0]["rules"][0]["resources"]),
        ["leases"],
        "{:?}",
        roles[0]
    );
    assert_no_wildcards(&docs);

    // A list of namespaces: a Role + RoleBinding in each, no ClusterRole, one flag each.
    let docs = yaml_docs(&render(
        "lopper-system",
        "watchNamespaces: [team-a, team-b]",
        &[],
    ));
    assert!(find(&docs, "ClusterRole").is_empty());
    assert!(find(&docs, "ClusterRoleBinding").is_empty());
    let role_ns: BTreeSet<_> = find(&docs, "Role")
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        role_ns,
        BTreeSet::from(["team-a".into(), "team-b".into(), "lopper-system".into()])
    );
    assert_eq!(find(&docs, "RoleBinding").len(), 3);
    let args =
        strings(&find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains(&"--namespace=team-a".to_string()), "{args:?}");
    assert!(args.contains(&"--namespace=team-b".to_string()), "{args:?}");
    assert_no_wildcards(&docs);
}

#[test]
fn deployment_args_are_accepted_by_lopper_controller() {
    // `lopper <the chart's args> --help` parses every flag (and value) before printing help.
    for values in [
        "{}",
        "watchNamespaces: [team-a, team-b]\nlogFormat: text\n",
        "replicaCount: 1\nleaderElection: {enabled: false}\n",
    ] {
        let docs = yaml_docs(&render("lopper-system", values, &[]));
        let args = strings(
            &find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"],
        );
        let out = Command::new(support::lopper_bin())
            .args(&args)
            .arg("--help")
            .output()
            .expect("run lopper");
        assert!(
            out.status.success(),
            "`lopper {}` is rejected: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_values_fail_with_a_message_naming_the_value() {
    // (values, a word the error must contain)
    let cases = [
        ("replicaCount: 0", "replicaCount"),
        ("replicaCount: two", "replicaCount"),
        ("logFormat: xml", "logFormat"),
        ("watchNamespaces: team-a", "watchNamespaces"),
        ("watchNamespaces: [Team_A]", "watchNamespaces"),
        ("watchNamespaces: [team-a, team-a]", "watchNamespaces"),
        ("image: {pullPolicy: Sometimes}", "pullPolicy"),
        ("image: {repository: ''}", "repository"),
        ("image: {digest: 'sha256:nothex'}", "digest"),
        ("service: {port: 70000}", "port"),
        ("resources: {limits: {memory: lots}}", "memory"),
        ("serviceMonitor: {interval: soon}", "interval"),
        ("leaderElection: {enabled: 'yes'}", "enabled"),
        (
            "replicaCount: 2\nleaderElection: {enabled: false}",
            "leaderElection",
        ),
        ("imageTag: v1", "imageTag"),
        ("rbac: {create: true, extra: 1}", "extra"),
    ];
    for (values, word) in cases {
        let (ok, out, err) = helm_template("lopper-system", values, &[]);
        assert!(!ok, "helm template accepted bad values {values:?}:\n{out}");
        assert!(
            err.contains("values don't meet the specifications of the schema")
                || err.contains("values.schema.json")
                || err.contains("schema"),
            "not a schema error for {values:?}: {err}"
        );
        assert!(
            err.contains(word),
            "the error for {values:?} does not name {word:?}: {err}"
        );
    }
}

/// Parses every document of every `*.yaml` file in `dir`, keyed by `metadata.name`.
fn crd_docs_in(dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for f in files {
        for doc in yaml_docs(&std::fs::read_to_string(&f).expect("read crd file")) {
            out.insert(name(&doc).to_string(), doc);
        }
    }
    out
}

#[test]
fn chart_crds_equal_lopper_crd_and_the_repository_crds() {
    // The chart's crds/ is a byte-for-byte copy of crds/ (generated by `lopper crd`).
    let repo_crds = repo_root().join("crds");
    let chart_crds = chart_dir().join("crds");
    let list = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("read {}: {e}", d.display()))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        list(&repo_crds),
        list(&chart_crds),
        "charts/lopper/crds/ must hold the same files as crds/: cp crds/* charts/lopper/crds/"
    );
    for f in list(&repo_crds) {
        let same = std::fs::read(repo_crds.join(&f)).expect("read")
            == std::fs::read(chart_crds.join(&f)).expect("read");
        assert!(
            same,
            "charts/lopper/crds/{f} differs from crds/{f}: cp crds/*.yaml charts/lopper/crds/"
        );
    }

    // And they are what `lopper crd` prints today (compared as YAML values, so layout is free).
    let out = Command::new(support::lopper_bin())
        .arg("crd")
        .output()
        .expect("run lopper crd");
    assert!(
        out.status.success(),
        "lopper crd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: BTreeMap<String, Value> = yaml_docs(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .map(|d| (name(&d).to_string(), d))
        .collect();
    let shipped = crd_docs_in(&chart_crds);
    assert!(
        generated.contains_key("studies.lopper.dev"),
        "{:?}",
        generated.keys()
    );
    assert!(
        generated.contains_key("trials.lopper.dev"),
        "{:?}",
        generated.keys()
    );
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        shipped.keys().collect::<Vec<_>>(),
        "the chart ships other CRDs than `lopper crd` prints"
    );
    for (n, g) in &generated {
        assert!(
            g == &shipped[n],
            "charts/lopper/crds/ is stale for {n}: regenerate crds/ with `lopper crd` and copy it"
        );
    }
}

#[test]
fn config_rbac_matches_the_chart() {
    let docs = yaml_docs(&render("lopper-system", "{}", &[]));
    let rules_of = |docs: &[Value], k: &str| -> Value {
        find(docs, k).first().unwrap_or_else(|| panic!("no {k}"))["rules"].clone()
    };
    let plain = |file: &str| -> Vec<Value> {
        yaml_docs(
            &std::fs::read_to_string(repo_root().join("config/rbac").join(file)).expect("read"),
        )
    };
    assert_eq!(
        rules_of(&plain("role.yaml"), "ClusterRole"),
        rules_of(&docs, "ClusterRole"),
        "config/rbac/role.yaml differs from the chart's ClusterRole"
    );
    assert_eq!(
        rules_of(&plain("leader_election_role.yaml"), "Role"),
        rules_of(&docs, "Role"),
        "config/rbac/leader_election_role.yaml differs from the chart's Lease Role"
    );
    let sa = &plain("service_account.yaml")[0];
    assert_eq!(name(sa), "lopper");
    assert_eq!(sa["metadata"]["namespace"].as_str(), Some("lopper-system"));
}

// ---------------------------------------------------------------------------------------------
// On the local control plane
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rendered_chart_passes_server_side_dry_run() {
    let client = cluster().await;
    support::apply_crds(&client).await;
    let release = TestNamespace::new(&client, "chart-dry").await;
    let team_a = TestNamespace::new(&client, "chart-dry-a").await;
    let team_b = TestNamespace::new(&client, "chart-dry-b").await;
    let namespaced = format!(
        "watchNamespaces: [{}, {}]\nlogFormat: text\n",
        team_a.name, team_b.name
    );
    for values in [
        "{}",
        namespaced.as_str(),
        "replicaCount: 1\nleaderElection: {enabled: false}\npodDisruptionBudget: {enabled: false}\n",
    ] {
        let rendered = render(&release.name, values, &["--include-crds"]);
        let docs = yaml_docs(&rendered);
        let (ok, out, err) = kubectl_stdin(
            &["apply", "--server-side", "--dry-run=server", "-f", "-"],
            &rendered,
        );
        assert!(
            ok,
            "server-side dry run rejected the chart with {values:?}:\n{out}\n{err}"
        );
        // One line per object, all accepted.
        assert_eq!(
            out.lines()
                .filter(|l| l.contains("(server dry run)"))
                .count(),
            docs.len(),
            "{out}"
        );
        assert!(
            out.contains("deployment.apps/lopper serverside-applied (server dry run)"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn samples_are_valid_studies() {
    let client = cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, "chart-samples").await;
    let dir = repo_root().join("config/samples");
    let mut pruners = BTreeSet::new();
    let mut sources = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/samples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read sample");
        for doc in yaml_docs(&text) {
            if kind(&doc) != "Study" {
                continue;
            }
            let spec = &doc["spec"];
            if let Some(m) = spec["pruner"].as_mapping() {
                pruners.extend(m.keys().map(|k| k.as_str().unwrap().to_string()));
            }
            if let Some(m) = spec["metrics"].as_mapping() {
                sources.extend(m.keys().map(|k| k.as_str().unwrap().to_string()));
            }
        }
        let (ok, out, err) = run(kubectl()
            .args([
                "apply",
                "--server-side",
                "--dry-run=server",
                "-n",
                &ns.name,
                "-f",
            ])
            .arg(f));
        assert!(ok, "{} is not a valid Study: {out}\n{err}", f.display());
    }
    for p in [
        "median",
        "percentile",
        "successiveHalving",
        "hyperband",
        "threshold",
        "patient",
        "wilcoxon",
        "asha",
        "none",
    ] {
        assert!(
            pruners.contains(p),
            "no sample uses the {p} pruner: {pruners:?}"
        );
    }
    for s in ["logs", "prometheus", "push", "file", "tensorboard"] {
        assert!(
            sources.contains(s),
            "no sample uses the {s} metric source: {sources:?}"
        );
    }
}

/// `kubectl auth can-i VERB RESOURCE [flags] --as USER` → "yes" / "no".
fn can_i(user: &str, args: &[&str]) -> bool {
    let (_, out, err) = run(kubectl()
        .args(["auth", "can-i"])
        .args(args)
        .args(["--as", user]));
    match out.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {args:?}: {other:?} {err}"),
    }
}

fn check_can_i(user: &str, expect: bool, cases: &[&[&str]]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|args| can_i(user, args) != expect)
        .map(|args| args.join(" "))
        .collect();
    assert!(
        wrong.is_empty(),
        "{user} should {}be allowed to: {wrong:#?}",
        if expect { "" } else { "NOT " }
    );
}

/// Applies the chart's RBAC for real (not the Deployment) and checks it with `kubectl auth can-i`.
async fn install_rbac(release: &str, values: &str) {
    let rendered = render(
        release,
        values,
        &[
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ],
    );
    let (ok, out, err) = kubectl_stdin(&["apply", "--server-side", "-f", "-"], &rendered);
    assert!(ok, "apply the chart's RBAC: {out}\n{err}");
}

fn operator_can_do_its_job(ns: &str, release: &str) -> Vec<Vec<String>> {
    let cases: &[&[&str]] = &[
        &["list", "studies.lopper.dev"],
        &["watch", "studies.lopper.dev"],
        &["patch", "studies.lopper.dev", "--subresource=status"],
        &["create", "trials.lopper.dev"],
        &["create", "curvechunks.lopper.dev"],
        &["watch", "curvechunks.lopper.dev"],
        &["patch", "trials.lopper.dev", "--subresource=status"],
        &["update", "trials.lopper.dev", "--subresource=finalizers"],
        &["create", "jobs.batch"],
        &["delete", "jobs.batch"],
        &["watch", "jobs.batch"],
        &["get", "jobsets.jobset.x-k8s.io"],
        &["list", "jobsets.jobset.x-k8s.io"],
        &["watch", "jobsets.jobset.x-k8s.io"],
        &["create", "jobsets.jobset.x-k8s.io"],
        &["delete", "jobsets.jobset.x-k8s.io"],
        &["get", "trainjobs.trainer.kubeflow.org"],
        &["list", "trainjobs.trainer.kubeflow.org"],
        &["watch", "trainjobs.trainer.kubeflow.org"],
        &["create", "trainjobs.trainer.kubeflow.org"],
        &["delete", "trainjobs.trainer.kubeflow.org"],
        &["list", "pods"],
        &["get", "pods", "--subresource=log"],
        &["create", "secrets"],
        &["get", "secrets/digits-7"],
        &["create", "events.events.k8s.io"],
        &["patch", "events.events.k8s.io"],
    ];
    let mut all: Vec<Vec<String>> = cases
        .iter()
        .map(|c| {
            let mut v: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            v.extend(["-n".into(), ns.into()]);
            v
        })
        .collect();
    for (verb, what) in [
        ("create", "leases.coordination.k8s.io"),
        ("get", "leases.coordination.k8s.io/lopper-controller"),
        ("update", "leases.coordination.k8s.io/lopper-controller"),
    ] {
        all.push(vec![verb.into(), what.into(), "-n".into(), release.into()]);
    }
    all
}

fn as_refs(v: &[Vec<String>]) -> Vec<Vec<&str>> {
    v.iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect()
}

/// What the operator must never be able to do, wherever it runs.
fn never(ns: &str) -> Vec<Vec<String>> {
    let cases: &[&[&str]] = &[
        &["delete", "nodes"],
        &["patch", "nodes"],
        &["get", "nodes"],
        &["list", "secrets"],
        &["watch", "secrets"],
        &["update", "secrets"],
        &["patch", "secrets"],
        &["delete", "secrets"],
        &["create", "pods"],
        &["delete", "pods"],
        &["create", "pods", "--subresource=exec"],
        &["create", "deployments.apps"],
        &["update", "jobs.batch"],
        &["update", "jobsets.jobset.x-k8s.io"],
        &["patch", "jobsets.jobset.x-k8s.io"],
        &["update", "trainjobs.trainer.kubeflow.org"],
        &["patch", "trainjobs.trainer.kubeflow.org"],
        &["get", "workloads.kueue.x-k8s.io"],
        &["update", "workloads.kueue.x-k8s.io"],
        &["create", "localqueues.kueue.x-k8s.io"],
        &["update", "clusterqueues.kueue.x-k8s.io"],
        &["create", "priorityclasses.scheduling.k8s.io"],
        &["update", "trials.lopper.dev"],
        &["delete", "trials.lopper.dev"],
        &["update", "studies.lopper.dev", "--subresource=status"],
        &["create", "studies.lopper.dev"],
        &["update", "studies.lopper.dev"],
        &["delete", "studies.lopper.dev"],
        &["get", "configmaps"],
        &["create", "serviceaccounts", "--subresource=token"],
        &["create", "roles.rbac.authorization.k8s.io"],
        &["create", "rolebindings.rbac.authorization.k8s.io"],
        &["create", "clusterroles.rbac.authorization.k8s.io"],
        &["create", "customresourcedefinitions.apiextensions.k8s.io"],
        &["impersonate", "users"],
        &["impersonate", "serviceaccounts"],
        &["delete", "leases.coordination.k8s.io"],
        &["get", "leases.coordination.k8s.io/kube-scheduler"],
        &["update", "leases.coordination.k8s.io/someone-elses-lease"],
        &["*", "*"],
    ];
    cases
        .iter()
        .map(|c| {
            let mut v: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            v.extend(["-n".into(), ns.into()]);
            v
        })
        .collect()
}

fn check(user: &str, expect: bool, cases: &[Vec<String>]) {
    let refs = as_refs(cases);
    let slices: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
    check_can_i(user, expect, &slices);
}

#[tokio::test]
async fn rbac_cluster_wide_allows_the_job_and_nothing_more() {
    let client = cluster().await;
    let release = TestNamespace::new(&client, "chart-rbac").await;
    let other = TestNamespace::new(&client, "chart-rbac-other").await;
    // Cluster-scoped names must not collide with parallel tests: a unique full name, but the
    // ServiceAccount keeps the chart's default name.
    let values = format!(
        "fullnameOverride: lopper-{}\nserviceAccount: {{name: lopper}}\n\
         leaderElection: {{enabled: true, leaseName: lopper-controller}}\n",
        release.name
    );
    install_rbac(&release.name, &values).await;
    let user = format!("system:serviceaccount:{}:lopper", release.name);

    check(
        &user,
        true,
        &operator_can_do_its_job(&other.name, &release.name),
    );
    check(&user, false, &never(&other.name));
    check(&user, false, &never(&release.name));
    // Leases only in the release namespace.
    check(
        &user,
        false,
        &[vec![
            "create".into(),
            "leases.coordination.k8s.io".into(),
            "-n".into(),
            other.name.clone(),
        ]],
    );
    // Not enforceable by RBAC (documented in docs/install.md, "RBAC"): `get` on a Secret by
    // name in a watched namespace, since the token Secrets are named after generated Trials.
    // Listing and watching (enumerating) Secrets stay denied above.
    assert!(can_i(
        &user,
        &["get", "secrets/any-name", "-n", &other.name]
    ));

    let crb: String = format!("lopper-{}", release.name);
    let _ = kubectl()
        .args([
            "delete",
            "clusterrole,clusterrolebinding",
            &crb,
            "--ignore-not-found",
        ])
        .output();
}

#[tokio::test]
async fn rbac_namespaced_cannot_touch_other_namespaces() {
    let client = cluster().await;
    let release = TestNamespace::new(&client, "chart-rbacns").await;
    let watched = TestNamespace::new(&client, "chart-rbacns-w").await;
    let other = TestNamespace::new(&client, "chart-rbacns-o").await;
    install_rbac(
        &release.name,
        &format!("watchNamespaces: [{}]\n", watched.name),
    )
    .await;
    let user = format!("system:serviceaccount:{}:lopper", release.name);

    let in_watched = operator_can_do_its_job(&watched.name, &release.name);
    check(&user, true, &in_watched);
    check(&user, false, &never(&watched.name));
    // Everything it may do in the watched namespace is denied in any other namespace,
    // including the release namespace (only its Lease is there) and cluster-wide.
    let elsewhere = |ns: &str| -> Vec<Vec<String>> {
        operator_can_do_its_job(ns, &release.name)
            .into_iter()
            .filter(|c| !c[1].starts_with("leases"))
            .collect()
    };
    check(&user, false, &elsewhere(&other.name));
    check(&user, false, &elsewhere(&release.name));
    check(&user, false, &elsewhere("kube-system"));
    check(
        &user,
        false,
        &[
            vec![
                "get".into(),
                "secrets/any-name".into(),
                "-n".into(),
                other.name.clone(),
            ],
            vec![
                "list".into(),
                "studies.lopper.dev".into(),
                "--all-namespaces".into(),
            ],
            vec!["list".into(), "pods".into(), "--all-namespaces".into()],
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// The operator as the chart's ServiceAccount, through a whole Study with pruning
// ---------------------------------------------------------------------------------------------

/// A client for the local cluster that impersonates `user` (kube's `auth_info.impersonate`,
/// i.e. a kubeconfig's `as:`): every request is authorised as that user, exactly as RBAC
/// authorises the operator's pod.
async fn impersonating_client(user: &str) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(kubeconfig_path()).expect("read kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.auth_info.impersonate = Some(user.to_string());
    kube::Client::try_from(config).expect("client")
}

/// POSTs `body` to `127.0.0.1:port` with a bearer token → (status, body).
async fn post(port: u16, path: &str, token: &str, body: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Captures every `forbidden` the operator's parts log, wherever they log it.
#[derive(Clone, Default)]
struct Forbidden(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Write for Forbidden {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        if line.to_lowercase().contains("forbidden") {
            self.0.lock().unwrap().push(line.into_owned());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn operator_as_the_chart_service_account_runs_a_study_with_pruning() {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, ListParams, PostParams};
    use lopper::controller::leader::LeaseLock;
    use lopper::crd::{Study, StudyPhase, Trial, TrialPhase};
    use std::time::Duration;

    let forbidden = Forbidden::default();
    let sink = forbidden.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,lopper=debug")
        .with_writer(move || sink.clone())
        .try_init();

    let admin = cluster().await;
    support::apply_crds(&admin).await;
    let release = TestNamespace::new(&admin, "chart-op").await;
    let studies_ns = TestNamespace::new(&admin, "chart-op-s").await;

    // The chart installed for real with Helm, watching one namespace: its ServiceAccount, Roles
    // and bindings are exactly what the operator gets in a cluster. (Its Deployment's pods land
    // on kwok nodes, where nothing runs, so they never take the Lease.)
    let f = values_file(&format!("watchNamespaces: [{}]\n", studies_ns.name));
    let (ok, out, err) = run(helm()
        .args(["install", "lopper"])
        .arg(chart_dir())
        .args(["--namespace", &release.name, "-f"])
        .arg(f.path()));
    assert!(ok, "helm install: {out}\n{err}");
    let user = format!("system:serviceaccount:{}:lopper", release.name);
    let op = impersonating_client(&user).await;

    // Impersonation is in force: the operator's identity cannot list Secrets.
    let denied = Api::<Secret>::namespaced(op.clone(), &studies_ns.name)
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
        "impersonated list secrets should be forbidden: {denied:?}"
    );

    // What `lopper controller` runs (the entry point tests/operator.rs uses), all as the
    // ServiceAccount: the Lease, the Study and Trial controllers with the push source's token
    // Secrets, the metric sources' loop and the push endpoint.
    let lease = LeaseLock::new(
        op.clone(),
        &release.name,
        "lopper-controller",
        "chart-test",
        Duration::from_secs(15),
    );
    tokio::time::timeout(Duration::from_secs(30), lease.acquire())
        .await
        .expect("the chart's ServiceAccount takes the Lease");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cfg = lopper::controller::Config {
        namespaces: vec![studies_ns.name.clone()],
        concurrency: 8,
        env_hook: Some(lopper::metrics::operator::env_hook(format!(
            "http://127.0.0.1:{port}"
        ))),
    };
    let view = lopper::controller::View::start(op.clone(), std::slice::from_ref(&studies_ns.name));
    assert!(
        view.ready(Duration::from_secs(60)).await,
        "the chart's ServiceAccount can list and watch what the view needs"
    );
    let tasks = [
        tokio::spawn(lopper::controller::run_on(view.clone(), cfg)),
        tokio::spawn(lopper::metrics::operator::run(view.clone())),
        tokio::spawn({
            let router = lopper::metrics::operator::http_router(view.clone());
            async move {
                let _ = axum::serve(listener, router).await;
            }
        }),
        tokio::spawn(async move { lease.hold().await }),
    ];

    // A push Study; the test plays every trainer through the push endpoint. Trials 0 and 1
    // learn well; odd trials from 3 on report a hopeless curve and must be pruned.
    let study: Study = serde_json::from_value(serde_json::json!({
        "apiVersion": "lopper.dev/v1alpha1", "kind": "Study",
        "metadata": {"name": "rbac"},
        "spec": {
            "objective": {"metric": "val_loss", "direction": "minimize"},
            "parameters": [{"name": "lr", "float": {"low": 0.001, "high": 0.1, "log": true}}],
            "sampler": {"random": {"seed": 3}},
            "pruner": {"median": {"startupTrials": 2, "warmupSteps": 1}},
            "maxTrials": 6, "parallelism": 2, "maxFailedTrials": 2,
            "metrics": {"push": {}},
            "trialTemplate": {
                "metadata": {"annotations": {"lopper.dev/fake-exit-after": "15s"}},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "trainer", "image": "example.invalid/trainer:1"}]
                }}}
            }
        }
    }))
    .expect("study object");
    let studies: Api<Study> = Api::namespaced(admin.clone(), &studies_ns.name);
    studies
        .create(&PostParams::default(), &study)
        .await
        .expect("create study");

    let trials: Api<Trial> = Api::namespaced(admin.clone(), &studies_ns.name);
    let admin_secrets: Api<Secret> = Api::namespaced(admin.clone(), &studies_ns.name);
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &studies_ns.name);
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut pruned_answers = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let phase = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "study did not finish in 240s: {:?}; refused: {:#?}",
            studies.get("rbac").await.ok().and_then(|s| s.status),
            forbidden.0.lock().unwrap()
        );
        for t in trials
            .list(&ListParams::default())
            .await
            .expect("list trials")
            .items
        {
            let tname = t.metadata.name.clone().expect("name");
            if t.phase().is_finished() || reported.contains(&tname) {
                continue;
            }
            // The token Secret the operator created (named after the Trial, key `token`).
            let Some(secret) = admin_secrets.get_opt(&tname).await.expect("get secret") else {
                continue;
            };
            let Some(token) = secret
                .data
                .as_ref()
                .and_then(|d| d.get("token"))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            else {
                continue;
            };
            // Report the whole curve at once (the pod "exits" 15 s after it starts).
            let n = t.spec.number;
            let hopeless = n >= 3 && n % 2 == 1;
            let path = format!("/v1/namespaces/{}/trials/{tname}/report", studies_ns.name);
            let mut done = true;
            for step in 0..5u32 {
                let value = if hopeless {
                    10.0 + f64::from(step)
                } else {
                    1.0 / f64::from(step + 1)
                };
                let body = format!(r#"{{"step": {step}, "metrics": {{"val_loss": {value}}}}}"#);
                let Some((status, answer)) = post(port, &path, &token, &body).await else {
                    done = false; // retried next round (a repeated step is ignored)
                    break;
                };
                assert_eq!(status, 200, "report {tname} step {step}: {answer}");
                let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON answer");
                if answer["prune"] == serde_json::Value::Bool(true) {
                    pruned_answers += 1;
                    break;
                }
            }
            if done {
                reported.insert(tname);
            }
        }
        let s = studies.get("rbac").await.expect("get study");
        match s.status.as_ref().and_then(|s| s.phase) {
            Some(p @ (StudyPhase::Succeeded | StudyPhase::Failed)) => break p,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let refused = forbidden.0.lock().unwrap().clone();
    assert_eq!(
        phase,
        StudyPhase::Succeeded,
        "{:?}; refused: {refused:#?}",
        studies.get("rbac").await.ok().and_then(|s| s.status)
    );

    let all = trials
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 6, "exactly maxTrials trials");
    let pruned: Vec<_> = all
        .iter()
        .filter(|t| t.phase() == TrialPhase::Pruned)
        .collect();
    assert!(!pruned.is_empty(), "no trial was pruned: {all:#?}");
    assert!(pruned_answers > 0, "no report was answered prune: true");
    assert!(
        !all.iter().any(|t| t.phase() == TrialPhase::Failed),
        "failed trials: {all:#?}"
    );
    for t in &pruned {
        let n = t.spec.number;
        assert!(n >= 3 && n % 2 == 1, "a good trial ({n}) was pruned");
        let job = t.metadata.name.clone().unwrap();
        let gone = support::wait_for(Duration::from_secs(10), || {
            let jobs = jobs.clone();
            let job = job.clone();
            async move {
                match jobs.get_opt(&job).await {
                    Ok(None) => Some(()),
                    Ok(Some(j)) if j.metadata.deletion_timestamp.is_some() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        assert!(
            gone.is_some(),
            "the pruned trial's Job {job} is still there"
        );
    }
    // Nothing the operator tried was refused: the chart's RBAC is sufficient.
    assert!(refused.is_empty(), "the operator was refused: {refused:#?}");

    for t in tasks {
        t.abort();
    }
    let (ok, out, err) = run(helm().args(["uninstall", "lopper", "--namespace", &release.name]));
    assert!(ok, "helm uninstall: {out}\n{err}");
}
