//! The operator image, built without a Docker daemon by `e2e/image.sh` (buildah, `FROM scratch`):
//! its config is the Dockerfile's, it holds the binary and exactly the libraries the binary loads,
//! an unchanged build is not redone and a rebuild gives the same digest, and it runs, as user
//! 65532 on a read-only root, against the local control plane through a whole study, both under
//! podman and unpacked into a mount namespace (unshare + chroot).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{TestNamespace, cluster, kubectl, repo_root, run};

/// What `bash e2e/image.sh build` printed on stdout (`key=value` lines) and on stderr.
struct Built {
    fields: BTreeMap<String, String>,
    log: String,
}

impl Built {
    fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("e2e/image.sh printed no {key}=: {:?}", self.fields))
    }
}

fn build_image(cache: Option<&Path>) -> Built {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("e2e/image.sh")).arg("build");
    if let Some(dir) = cache {
        cmd.env("LOPPER_IMAGE_CACHE", dir);
    }
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "bash e2e/image.sh build failed:\n{err}");
    let fields = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Built { fields, log: err }
}

/// The image, built once per test binary (cached by the script across runs).
fn image() -> &'static Built {
    static IMAGE: OnceLock<Built> = OnceLock::new();
    IMAGE.get_or_init(|| build_image(None))
}

/// A member of the OCI archive, by path.
fn archive_member(archive: &str, member: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["-xOf", archive, member])
        .output()
        .expect("tar");
    assert!(out.status.success(), "no {member} in {archive}");
    out.stdout
}

fn blob(archive: &str, digest: &str) -> Vec<u8> {
    archive_member(archive, &format!("blobs/{}", digest.replace(':', "/")))
}

fn manifest(archive: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&archive_member(archive, "index.json")).expect("index.json");
    let digest = index["manifests"][0]["digest"].as_str().expect("digest");
    serde_json::from_slice(&blob(archive, digest)).expect("manifest")
}

fn oci_config(archive: &str) -> serde_json::Value {
    let m = manifest(archive);
    let digest = m["config"]["digest"].as_str().expect("config digest");
    serde_json::from_slice(&blob(archive, digest)).expect("config")
}

/// The instructions of the Dockerfile's final stage: (instruction, rest of the line).
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let mut stage = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (ins, rest) = line.split_once(' ').unwrap_or((line, ""));
        if ins.eq_ignore_ascii_case("FROM") {
            stage.clear();
        }
        stage.push((ins.to_ascii_uppercase(), rest.trim().to_string()));
    }
    stage
}

fn instruction<'a>(stage: &'a [(String, String)], ins: &str) -> &'a str {
    stage
        .iter()
        .rev()
        .find(|(i, _)| i == ins)
        .map(|(_, r)| r.as_str())
        .unwrap_or_else(|| panic!("the Dockerfile's final stage has no {ins}"))
}

#[test]
fn image_config_is_the_dockerfiles() {
    let img = image();
    let config = oci_config(img.get("archive"));
    let c = &config["config"];
    let stage = dockerfile_final_stage();
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("exec-form JSON");

    assert_eq!(c["User"], "65532:65532", "the image's user");
    assert_eq!(c["User"].as_str(), Some(instruction(&stage, "USER")));
    assert_eq!(c["Entrypoint"], json(instruction(&stage, "ENTRYPOINT")));
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/lopper"])
    );
    assert_eq!(c["Cmd"], json(instruction(&stage, "CMD")));
    let port = format!("{}/tcp", instruction(&stage, "EXPOSE"));
    assert!(
        c["ExposedPorts"].get(&port).is_some(),
        "{port} not exposed: {c}"
    );
    // Both start from nothing and copy the tree `e2e/image.sh rootfs` makes.
    assert_eq!(instruction(&stage, "FROM"), "scratch");
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("bash e2e/image.sh rootfs"),
        "the Dockerfile does not build its tree with e2e/image.sh rootfs"
    );
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
}

/// Files of the image's single layer, without a leading `./`.
fn layer_files(archive: &str) -> Vec<String> {
    let m = manifest(archive);
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {m}");
    let digest = layers[0]["digest"].as_str().expect("layer digest");
    let path = std::env::temp_dir().join(format!("lopper-image-layer-{}", std::process::id()));
    std::fs::write(&path, blob(archive, digest)).expect("write layer");
    let (ok, out, err) = run(Command::new("tar").arg("-tf").arg(&path));
    let _ = std::fs::remove_file(&path);
    assert!(ok, "tar -tf layer: {err}");
    out.lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn image_holds_the_binary_and_exactly_the_libraries_it_loads() {
    let img = image();
    let files: BTreeSet<String> = layer_files(img.get("archive")).into_iter().collect();
    for f in [
        "usr/local/bin/lopper",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "etc/group",
        "tmp",
    ] {
        assert!(files.contains(f), "{f} missing from the image: {files:?}");
    }
    for absent in ["bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/apt-get"] {
        assert!(!files.contains(absent), "{absent} is in the image");
    }
    // What the loader maps for the image's own binary (ldd on the unpacked copy).
    let root = unpacked_root();
    let (ok, out, err) = run(Command::new("ldd").arg(root.join("usr/local/bin/lopper")));
    assert!(ok, "ldd: {err}");
    let wanted: BTreeSet<String> = out
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            match parts.as_slice() {
                [_, "=>", p, ..] if p.starts_with('/') => Some(p.to_string()),
                [p, ..] if p.starts_with('/') => Some(p.to_string()),
                _ => None,
            }
        })
        .map(|p| p.trim_start_matches('/').to_string())
        .collect();
    assert!(
        wanted.iter().any(|l| l.contains("libc.so")),
        "ldd found no libc: {out}"
    );
    let libs: BTreeSet<String> = files
        .iter()
        .filter(|f| f.contains(".so"))
        .cloned()
        .collect();
    assert_eq!(libs, wanted, "the image's libraries are not the binary's");

    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "no user 65532 in /etc/passwd: {passwd}"
    );
    let size: u64 = img.get("size").parse().expect("size");
    eprintln!(
        "image {}: {size} bytes compressed, {} unpacked",
        img.get("ref"),
        img.get("unpacked_size")
    );
    assert!(
        size < 40 << 20,
        "the image grew past 40 MiB compressed: {size}"
    );
}

#[test]
fn image_is_cached_and_rebuilds_to_the_same_digest() {
    let first = image();
    let again = build_image(None);
    // Cargo recompiling means the sources changed since `first` (someone edited the tree while
    // the tests ran): then a new image is right. Otherwise the build must come from the cache.
    let recompiled = again.log.contains("Compiling lopper");
    if recompiled {
        eprintln!("sources changed during the test; not checking the cache hit");
    } else {
        assert!(
            again.log.contains("cached:"),
            "an unchanged build was redone:\n{}",
            again.log
        );
        assert_eq!(again.get("digest"), first.get("digest"));
    }
    // A build into an empty cache: same inputs, same digest (timestamps fixed at 0).
    let fresh = tempfile::tempdir().expect("temp cache");
    let rebuilt = build_image(Some(fresh.path()));
    assert!(
        !rebuilt.log.contains("cached:"),
        "the fresh cache was not empty"
    );
    assert!(
        !rebuilt.log.contains("Compiling lopper"),
        "sources changed during the test:\n{}",
        rebuilt.log
    );
    assert_eq!(
        rebuilt.get("digest"),
        again.get("digest"),
        "same inputs, different image"
    );
    assert_eq!(rebuilt.get("ref"), again.get("ref"));
}

fn unpacked_root() -> PathBuf {
    image();
    let (ok, out, err) = run(Command::new("bash")
        .arg(repo_root().join("e2e/image.sh"))
        .arg("unpack"));
    assert!(ok, "e2e/image.sh unpack: {err}");
    PathBuf::from(out.trim())
}

/// A process from the image, killed when dropped; its output goes to a file.
struct Running {
    child: Child,
    log: PathBuf,
    /// The podman container's name: killing the podman client leaves the container running.
    podman: Option<String>,
}

impl Running {
    fn start(mut cmd: Command, name: &str) -> Running {
        let log = std::env::temp_dir().join(format!("lopper-{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("spawn");
        Running {
            child,
            log,
            podman: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(name) = &self.podman {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", name])
                .output();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// HTTP GET on loopback → (status, body); None while nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((status, body.to_string()))
}

/// A `logs` Study whose trials are kwok pods serving `e2e/fake-logs/digits.log` and exiting
/// after 3 s: each completes with val_loss 0.24 at epoch 4.
fn digits_study(name: &str, trials: u32) -> String {
    format!(
        r#"apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: {name}}}
spec:
  objective: {{metric: val_loss, direction: minimize}}
  parameters:
    - name: lr
      float: {{low: 0.0001, high: 0.5, log: true}}
  sampler: {{random: {{seed: 11}}}}
  maxTrials: {trials}
  parallelism: 2
  metrics: {{logs: {{format: keyValue, stepKey: epoch}}}}
  trialTemplate:
    spec:
      template:
        metadata:
          annotations: {{lopper.dev/fake-exit-after: 3s}}
        spec:
          restartPolicy: Never
          containers:
            - name: fake-logs-digits
              image: trainer:fake
              args: ["--lr=${{params.lr}}"]
"#
    )
}

fn kubectl_apply(ns: &str, yaml: &str) {
    let path = std::env::temp_dir().join(format!("lopper-image-study-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).expect("write manifest");
    let (ok, out, err) = run(kubectl().args(["apply", "-n", ns, "-f"]).arg(&path));
    let _ = std::fs::remove_file(&path);
    assert!(ok, "kubectl apply: {out}\n{err}");
}

fn kubectl_json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = run(kubectl().args(args).args(["-o", "json"]));
    assert!(ok, "kubectl {args:?}: {err}");
    serde_json::from_str(&out).expect("kubectl JSON")
}

/// Waits for the Study to finish; returns (phase, [(trial phase, value)]).
fn wait_for_study(ns: &str, name: &str, op: &mut Running) -> (String, Vec<(String, f64)>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = op.exited() {
            panic!("the operator exited ({status}):\n{}", op.log());
        }
        let study = kubectl_json(&["get", "study", name, "-n", ns]);
        let phase = study["status"]["phase"].as_str().unwrap_or("").to_string();
        if phase == "Succeeded" || phase == "Failed" {
            let list = kubectl_json(&[
                "get",
                "trials",
                "-n",
                ns,
                "-l",
                &format!("lopper.dev/study={name}"),
            ]);
            let trials = list["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|t| {
                    (
                        t["status"]["phase"].as_str().unwrap_or("").to_string(),
                        t["status"]["value"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect();
            return (phase, trials);
        }
        assert!(
            Instant::now() < deadline,
            "study {name} not finished in 180 s: {}\noperator log:\n{}",
            study["status"],
            op.log()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs the operator from the image (`image.sh sandbox` or `image.sh podman`) through a study
/// in a namespace of its own, checking identity, root filesystem and HTTP endpoints on the way.
async fn study_through_the_image(runtime: &str) {
    let admin = cluster().await;
    support::apply_crds(&admin).await;
    let ns = TestNamespace::new(&admin, &format!("image-{runtime}")).await;
    let port = free_port();
    // The operator's own identity from `e2e/cluster.sh up` (next to the admin kubeconfig).
    let kubeconfig = support::kubeconfig_path().with_file_name("operator.kubeconfig");
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("e2e/image.sh")).arg(runtime);
    if runtime == "sandbox" {
        cmd.arg("-k").arg(&kubeconfig);
    } else {
        // podman: the kubeconfig given as a podman secret; a name to inspect and stop it by.
        cmd.env("LOPPER_PODMAN_KUBECONFIG", &kubeconfig);
        cmd.env("LOPPER_PODMAN_NAME", &ns.name);
    }
    cmd.args([
        "--",
        "controller",
        "--namespace",
        &ns.name,
        "--leader-election=false",
        "--port",
        &port.to_string(),
        "--log-format",
        "text",
    ]);
    cmd.env("RUST_LOG", "info");
    let mut op = Running::start(cmd, runtime);
    if runtime == "podman" {
        op.podman = Some(ns.name.clone());
    }

    // /healthz then /readyz (once the API answered), from the host.
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(port, "/readyz").map(|r| r.0) != Some(200) {
        if let Some(status) = op.exited() {
            panic!("the operator exited ({status}):\n{}", op.log());
        }
        assert!(
            Instant::now() < deadline,
            "/readyz not 200 in 60 s:\n{}",
            op.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(port, "/healthz").map(|r| r.0), Some(200));

    if runtime == "sandbox" {
        // The spawned process is the operator itself (exec all along): check who it is and
        // what its root is, as the kernel sees them.
        let pid = op.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let uid = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
        assert_eq!(
            uid.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["65532"; 4],
            "{uid}"
        );
        let gid = status.lines().find(|l| l.starts_with("Gid:")).expect("Gid");
        assert_eq!(
            gid.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["65532"; 4],
            "{gid}"
        );
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mounts");
        let root = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))
            .expect("a mount on /");
        let opts: Vec<&str> = root
            .split_whitespace()
            .nth(5)
            .expect("options")
            .split(',')
            .collect();
        assert!(opts.contains(&"ro"), "root is not read-only: {root}");
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert!(
            exe.ends_with("rootfs/usr/local/bin/lopper"),
            "not the image's binary: {exe:?}"
        );
    }

    if runtime == "podman" {
        let (ok, out, err) = run(Command::new("podman").args(["top", &ns.name, "huser"]));
        assert!(ok, "podman top: {err}");
        assert_eq!(out.lines().nth(1).map(str::trim), Some("65532"), "{out}");
        let (ok, out, err) = run(Command::new("podman").args([
            "inspect",
            &ns.name,
            "--format",
            "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}",
        ]));
        assert!(ok, "podman inspect: {err}");
        assert_eq!(out.trim(), "true 65532:65532");
    }

    kubectl_apply(&ns.name, &digits_study("digits", 3));
    let (phase, trials) = wait_for_study(&ns.name, "digits", &mut op);
    assert_eq!(phase, "Succeeded", "trials: {trials:?}\n{}", op.log());
    assert_eq!(trials.len(), 3, "{trials:?}");
    for (p, v) in &trials {
        assert_eq!(p, "Completed", "{trials:?}");
        assert!((v - 0.24).abs() < 1e-9, "value {v}, want 0.24: {trials:?}");
    }
    let (_, metrics) = http_get(port, "/metrics").expect("/metrics");
    assert!(
        metrics.contains("lopper_"),
        "no lopper_ metrics:\n{metrics}"
    );
    drop(op);
    ns.delete(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpacked_image_runs_a_study_as_65532_on_a_read_only_root() {
    study_through_the_image("sandbox").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_runs_the_image_through_a_study() {
    // The plain command a user tries is shown too, so the reason for the runtime settings
    // stays visible: if it starts working, e2e/image.sh and e2e/kind/README.md should say so.
    let img = image();
    let (ok, out, err) = run(Command::new("bash")
        .arg(repo_root().join("e2e/image.sh"))
        .args(["podman", "--", "--version"]));
    assert!(ok, "e2e/image.sh podman -- --version: {out}\n{err}");
    assert!(out.starts_with("lopper "), "{out}");
    let (ok, out, err) = run(Command::new("podman")
        .args(["run", "--rm", "--read-only"])
        .arg(img.get("ref"))
        .arg("--version"));
    eprintln!("plain `podman run` (crun, default ulimits): ok={ok} {out}{err}");
    study_through_the_image("podman").await;
}
