//! Reading a Study manifest (the CRD's schema, as `kubectl apply` takes it) for a local run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::crd::Study;
use crate::engine::Direction;
use crate::engine::budget::Budget;
use crate::engine::pruners::PrunerSpec;
use crate::engine::samplers::SamplerSpec;
use crate::engine::space::SearchSpace;
use crate::metrics::MetricsSpec;

/// Grace period between SIGTERM and SIGKILL when the pod template does not set
/// `terminationGracePeriodSeconds` (Kubernetes' default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Everything `lopper run` needs from a Study manifest.
#[derive(Clone, Debug)]
pub struct LocalStudy {
    pub name: String,
    /// The manifest's folder: the default working directory of the trials.
    pub dir: PathBuf,
    pub direction: Direction,
    pub metric: String,
    pub goal: Option<f64>,
    pub space: SearchSpace,
    pub sampler: SamplerSpec,
    pub sampler_name: String,
    pub pruner: PrunerSpec,
    pub pruner_name: String,
    /// `None`: bounded by `budget` alone.
    pub max_trials: Option<u32>,
    pub budget: Option<Budget>,
    /// GPUs a trial is accounted for (the operator's rule), for `budget.gpuHours`.
    pub gpus: u32,
    pub parallelism: u32,
    pub max_failed_trials: Option<u32>,
    pub metrics: MetricsSpec,
    pub warm_start: Vec<String>,
    pub grace: Duration,
    /// The Study as read: trials are rendered from it as the operator renders their Jobs.
    pub crd: Study,
}

impl LocalStudy {
    /// Reads the first `kind: Study` document of the YAML file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<LocalStudy> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = dir.canonicalize().unwrap_or(dir);
        Self::parse(&text, dir).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str, dir: PathBuf) -> anyhow::Result<LocalStudy> {
        let mut found = None;
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value = serde_yaml::Value::deserialize(doc).context("not valid YAML")?;
            if value.get("kind").and_then(|k| k.as_str()) == Some("Study") {
                found = Some(value);
                break;
            }
        }
        let value = found.context("no `kind: Study` document")?;
        // Through JSON, as the API server sees it (serde_yaml reads enums from a `Value` only
        // as YAML tags, not as the `{tpe: {...}}` maps of the schema).
        let json = serde_json::to_value(&value).context("not valid YAML")?;
        let study: Study = serde_json::from_value(json).context("not a valid Study")?;
        if let Some(msg) = &study.spec.invalid {
            anyhow::bail!("not a valid Study: {msg}");
        }
        let name = study
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .context("metadata.name is required")?;
        // The operator's checks, in its order (space, sampler, pruner, metrics, limits, the
        // template rendering as a Job would), so a manifest is refused here exactly when the
        // operator would mark it InvalidSpec.
        let (space, _, _) =
            crate::workload::spec::validate(&study).map_err(|e| anyhow::anyhow!(e))?;
        let sampler = study.sampler();
        // Through serde, so this reads the engine's spec whatever type the CRD embeds.
        let pruner: PrunerSpec =
            serde_json::from_value(serde_json::to_value(study.pruner())?).context("spec.pruner")?;
        let spec = &study.spec;
        let kind = crate::workload::kinds::WorkloadKind::of(&study);
        anyhow::ensure!(
            kind == crate::workload::kinds::WorkloadKind::Job,
            "spec.trialTemplate.{}: a local run runs the trial's command as a process, which needs a Job template (spec.trialTemplate.spec); run {:?} trials with the operator",
            kind.field(),
            kind
        );
        anyhow::ensure!(
            spec.max_trials.is_none_or(|m| m >= 1),
            "spec.maxTrials must be at least 1"
        );
        anyhow::ensure!(spec.parallelism >= 1, "spec.parallelism must be at least 1");
        let probe = super::template::command_line(&study, 0, &crate::engine::Params::new())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(
            probe.has_command,
            "container {:?}: a local run needs `command` (the image's entrypoint is unknown here{})",
            probe.container,
            match probe.argv.first() {
                Some(a) => format!("; args alone would start {a:?} as the program"),
                None => String::new(),
            }
        );
        for name in &probe.unresolved {
            tracing::warn!("env {name}: valueFrom cannot be resolved locally, skipped");
        }
        let grace = spec
            .trial_template
            .spec
            .as_ref()
            .and_then(|s| {
                s.pointer("/template/spec/terminationGracePeriodSeconds")
                    .and_then(|g| g.as_f64())
            })
            .map(|g| Duration::from_secs_f64(g.max(0.0)))
            .unwrap_or(DEFAULT_GRACE);
        Ok(LocalStudy {
            name,
            dir,
            direction: spec.objective.direction,
            metric: spec.objective.metric.clone(),
            goal: spec.objective.goal,
            space,
            sampler_name: key_name(&sampler),
            sampler,
            pruner_name: key_name(&pruner),
            pruner,
            max_trials: spec.max_trials,
            budget: spec.budget,
            gpus: crate::workload::job::gpus_per_trial(&study),
            parallelism: spec.parallelism,
            max_failed_trials: spec.max_failed_trials,
            metrics: study.metrics(),
            warm_start: spec
                .warm_start
                .as_ref()
                .map(|w| w.from_studies.clone())
                .unwrap_or_default(),
            grace,
            crd: study,
        })
    }
}

use serde::Deserialize;

/// The one key of a `{key: {...}}` spec (`tpe`, `median`, …).
fn key_name<T: serde::Serialize>(spec: &T) -> String {
    match serde_json::to_value(spec) {
        Ok(serde_json::Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The results file standing for an earlier study named in `spec.warmStart.fromStudies`:
/// `<name>.results.json` (or `<name>.json`) next to the manifest.
pub fn warm_start_file(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for candidate in [format!("{name}.results.json"), format!("{name}.json")] {
        let p = dir.join(&candidate);
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "spec.warmStart.fromStudies names {name:?}: locally that is the results file \
         {name}.results.json next to the manifest (write it with `lopper run --output`), \
         and {} has none",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(container: &str) -> String {
        format!(
            r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: s}}
spec:
  objective: {{metric: loss}}
  parameters:
    - {{name: lr, float: {{low: 0.001, high: 0.1}}}}
  maxTrials: 2
  trialTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - {container}
"#
        )
    }

    #[test]
    fn a_local_run_needs_the_command_not_only_args() {
        let ok = study(
            r#"{name: t, image: i, command: [python, train.py], args: ["--lr=${params.lr}"]}"#,
        );
        assert!(LocalStudy::parse(&ok, PathBuf::from(".")).is_ok());
        let args_only = study(r#"{name: t, image: i, args: ["--lr=${params.lr}"]}"#);
        let e = LocalStudy::parse(&args_only, PathBuf::from("."))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("container \"t\": a local run needs `command`") && e.contains("\"--lr="),
            "{e}"
        );
    }
}
