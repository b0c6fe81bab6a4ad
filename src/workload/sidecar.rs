//! The metrics sidecar of a `file` or `tensorboard` trial, added to its pod when the Job is
//! rendered: a native sidecar (an init container with `restartPolicy: Always`, so it starts
//! before the trainer and is stopped only after it) running `lopper sidecar` from the
//! operator's own image, with the folder of the metrics path shared with the primary
//! container: an `emptyDir` mounted in both, or the user's own volume when the primary
//! container already mounts one there.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, PodSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::job::RenderError;
use crate::metrics::spec::{FileFormat, MetricsSpec};

/// Name of the sidecar container.
pub const CONTAINER: &str = "lopper-metrics";
/// Name of the `emptyDir` shared with the primary container.
pub const SHARED_VOLUME: &str = "lopper-metrics";
/// Name of the sidecar's own `emptyDir` (its state, which outlives a restart of the container).
pub const STATE_VOLUME: &str = "lopper-sidecar-state";
/// Where the state volume is mounted in the sidecar.
pub const STATE_DIR: &str = "/var/lib/lopper-sidecar";
/// The uid and gid the sidecar runs as: the operator image's non-root user (as the chart runs
/// the operator).
pub const RUN_AS: i64 = 65532;

/// The folder the sidecar shares with the primary container, and what it follows there.
pub fn shared_folder(spec: &MetricsSpec) -> Option<(String, String)> {
    match spec {
        MetricsSpec::File(f) => {
            let folder = f.path.rsplit_once('/').map_or("", |(d, _)| d);
            Some((folder.to_string(), f.path.clone()))
        }
        MetricsSpec::Tensorboard(t) => {
            let d = t.dir.trim_end_matches('/').to_string();
            Some((d.clone(), d))
        }
        _ => None,
    }
}

/// The sidecar's arguments (after the image's entrypoint, `lopper`).
pub fn args(spec: &MetricsSpec) -> Vec<String> {
    let mut a = vec!["sidecar".to_string()];
    match spec {
        MetricsSpec::File(f) => {
            let format = match f.format {
                FileFormat::Csv => "csv",
                FileFormat::Jsonl => "jsonl",
                FileFormat::KeyValue => "keyValue",
            };
            a.extend([
                "--file".into(),
                f.path.clone(),
                "--format".into(),
                format.into(),
                "--step-key".into(),
                f.step_key.clone(),
            ]);
        }
        MetricsSpec::Tensorboard(t) => {
            a.extend(["--tensorboard".into(), t.dir.clone()]);
            if let Some(tag) = &t.tag {
                a.extend(["--tag".into(), tag.clone()]);
            }
        }
        _ => {}
    }
    a.extend(["--state".into(), format!("{STATE_DIR}/state.json")]);
    a
}

/// The sidecar's security context: the chart's for the operator container, with the user the
/// chart sets on the operator's pod (the trainer's pod may set none).
pub fn security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether `path` is `base` or below it (by whole components).
fn under(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    path == base || base.is_empty() || path.starts_with(&format!("{base}/"))
}

/// Adds the sidecar of `spec` (a `file` or `tensorboard` source; others add nothing) to `pod`,
/// whose primary container is `primary`, with `env` (the trial's variables and token).
pub fn add(
    pod: &mut PodSpec,
    primary: usize,
    spec: &MetricsSpec,
    image: &str,
    env: &[EnvVar],
) -> Result<(), RenderError> {
    let Some((folder, _)) = shared_folder(spec) else {
        return Ok(());
    };
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    for name in [SHARED_VOLUME, STATE_VOLUME] {
        if volumes.iter().any(|v| v.name == name) {
            return Err(RenderError::Sidecar(format!(
                "the pod template already has a volume named {name}"
            )));
        }
    }
    let mounts = pod.containers[primary]
        .volume_mounts
        .get_or_insert_with(Vec::new);
    // The user's own volume when the primary container mounts one at or above the folder
    // (the deepest such mount), else an emptyDir at the folder.
    let existing = mounts
        .iter()
        .filter(|m| under(&folder, &m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .cloned();
    let shared = match existing {
        Some(m) => VolumeMount {
            read_only: Some(true),
            ..m
        },
        None => {
            volumes.push(Volume {
                name: SHARED_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            mounts.push(VolumeMount {
                name: SHARED_VOLUME.into(),
                mount_path: folder.clone(),
                ..Default::default()
            });
            VolumeMount {
                name: SHARED_VOLUME.into(),
                mount_path: folder,
                read_only: Some(true),
                ..Default::default()
            }
        }
    };
    volumes.push(Volume {
        name: STATE_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("1Mi".into())),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sidecar = Container {
        name: CONTAINER.into(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args(spec)),
        env: Some(env.to_vec()),
        // Native sidecar: started before the trainer, stopped after it.
        restart_policy: Some("Always".into()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("10m".into())),
                ("memory".into(), Quantity("32Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity("128Mi".into()),
            )])),
            ..Default::default()
        }),
        security_context: Some(security_context()),
        volume_mounts: Some(vec![
            shared,
            VolumeMount {
                name: STATE_VOLUME.into(),
                mount_path: STATE_DIR.into(),
                ..Default::default()
            },
        ]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let init = pod.init_containers.get_or_insert_with(Vec::new);
    if init.iter().any(|c| c.name == CONTAINER)
        || pod.containers.iter().any(|c| c.name == CONTAINER)
    {
        return Err(RenderError::Sidecar(format!(
            "the pod template already has a container named {CONTAINER}"
        )));
    }
    init.push(sidecar);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::spec::{FileSpec, TensorboardSpec};

    fn pod(mounts: serde_json::Value) -> PodSpec {
        serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "helper", "image": "h"},
                {"name": "trainer", "image": "t", "volumeMounts": mounts}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }))
        .unwrap()
    }

    fn file(path: &str) -> MetricsSpec {
        MetricsSpec::File(FileSpec {
            path: path.into(),
            format: FileFormat::Jsonl,
            step_key: "epoch".into(),
        })
    }

    #[test]
    fn shares_an_empty_dir_or_the_users_volume() {
        let mut p = pod(serde_json::json!([]));
        add(&mut p, 1, &file("/metrics/m.jsonl"), "img", &[]).unwrap();
        let side = &p.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            side.args.as_ref().unwrap()[..7],
            [
                "sidecar",
                "--file",
                "/metrics/m.jsonl",
                "--format",
                "jsonl",
                "--step-key",
                "epoch"
            ]
        );
        let m = &p.containers[1].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str()),
            (SHARED_VOLUME, "/metrics")
        );
        assert!(p.containers[0].volume_mounts.is_none(), "only the primary");

        // Deepest user mount at or above the folder; not a mere string prefix (/data2).
        let mut p = pod(serde_json::json!([
            {"name": "data", "mountPath": "/data"},
            {"name": "other", "mountPath": "/data/run", "subPath": "x"},
            {"name": "data2", "mountPath": "/data2"}
        ]));
        let tb = MetricsSpec::Tensorboard(TensorboardSpec {
            dir: "/data/run/tb/".into(),
            tag: None,
        });
        add(&mut p, 1, &tb, "img", &[]).unwrap();
        let side = &p.init_containers.as_ref().unwrap()[0];
        let m = &side.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (
                m.name.as_str(),
                m.mount_path.as_str(),
                m.sub_path.as_deref(),
                m.read_only
            ),
            ("other", "/data/run", Some("x"), Some(true))
        );
        assert!(
            !p.volumes
                .as_ref()
                .unwrap()
                .iter()
                .any(|v| v.name == SHARED_VOLUME)
        );
        assert!(!side.args.as_ref().unwrap().contains(&"--tag".to_string()));

        // Names already taken are an error naming them.
        let mut p = pod(serde_json::json!([]));
        p.init_containers = Some(vec![Container {
            name: CONTAINER.into(),
            ..Default::default()
        }]);
        let e = add(&mut p, 1, &file("/m/x"), "img", &[]).unwrap_err();
        assert!(e.to_string().contains(CONTAINER), "{e}");
        // Other sources add nothing.
        let mut p = pod(serde_json::json!([]));
        add(&mut p, 1, &MetricsSpec::default(), "img", &[]).unwrap();
        assert!(p.init_containers.is_none());
    }
}
