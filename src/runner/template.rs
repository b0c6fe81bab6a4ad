//! A trial's command line and environment, rendered exactly as the operator renders the
//! trial's Job ([`render_job`]): the same placeholders (`${params.NAME}`, `${trial.name}`,
//! `${trial.number}`, `${study.name}`, `$${` for a literal `${`), the same errors for unknown
//! ones, and the same `LOPPER_*` environment. One renderer, so a manifest that runs locally
//! renders the same on a cluster.

use crate::crd::{Study, Trial, TrialSpec};
use crate::engine::Params;
use crate::workload::job::{RenderError, TrialExtras, primary_index, render_job};

pub use crate::crd::{param_env_name, trial_name};

/// What a local trial runs: the primary container's `command` + `args` and its literal
/// environment (`valueFrom` entries cannot be resolved locally and are left out).
#[derive(Clone, Debug, PartialEq)]
pub struct CommandLine {
    /// The primary container's name.
    pub container: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Names of the `valueFrom` variables left out.
    pub unresolved: Vec<String>,
    /// The container sets `command` (without it a pod runs the image's entrypoint).
    pub has_command: bool,
}

/// Renders trial `number` of `study` with `params`.
pub fn command_line(
    study: &Study,
    number: u64,
    params: &Params,
) -> Result<CommandLine, RenderError> {
    let study_name = study.metadata.name.clone().unwrap_or_default();
    let trial = Trial::new(
        &trial_name(&study_name, number),
        TrialSpec {
            study: study_name,
            number,
            params: params.clone(),
            invalid: None,
        },
    );
    let job = render_job(study, &trial, &TrialExtras::default())?;
    let mut pod = job
        .spec
        .and_then(|s| s.template.spec)
        .ok_or(RenderError::NoContainers)?;
    let at = primary_index(study, &pod.containers)?;
    let primary = pod.containers.swap_remove(at);
    let has_command = primary.command.as_ref().is_some_and(|c| !c.is_empty());
    let argv = primary
        .command
        .unwrap_or_default()
        .into_iter()
        .chain(primary.args.unwrap_or_default())
        .collect();
    let (from, literal): (Vec<_>, Vec<_>) = primary
        .env
        .unwrap_or_default()
        .into_iter()
        .partition(|e| e.value_from.is_some());
    Ok(CommandLine {
        container: primary.name,
        has_command,
        argv,
        env: literal
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect(),
        unresolved: from.into_iter().map(|e| e.name).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ParamValue;

    fn study(args: &str) -> Study {
        let y = format!(
            r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: s}}
spec:
  objective: {{metric: loss, direction: minimize}}
  maxTrials: 4
  parameters:
    - name: lr
      float: {{low: 0.001, high: 0.1}}
    - name: hidden
      int: {{low: 16, high: 128}}
    - name: momentum
      float: {{low: 0.0, high: 0.9}}
  trialTemplate:
    spec:
      template:
        spec:
          containers:
            - name: trainer
              image: x
              command: [python, train.py]
              args: {args}
              env: [{{name: OUT, value: "/runs/${{trial.name}}"}}, {{name: SECRET, valueFrom: {{secretKeyRef: {{name: a, key: b}}}}}}]
"#
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&y).unwrap();
        let s: Study = serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap();
        assert_eq!(s.spec.invalid, None);
        s
    }

    #[test]
    fn renders_as_the_job_does() {
        let mut params = Params::new();
        params.insert("lr".into(), ParamValue::Float(0.01));
        params.insert("hidden".into(), ParamValue::Int(64));
        let s = study(
            r#"["--lr=${params.lr}", "${params.hidden}/${trial.name}", "${trial.number}${study.name}", "m=${params.momentum}", "$${HOME}"]"#,
        );
        let c = command_line(&s, 3, &params).unwrap();
        assert_eq!(
            c.argv,
            [
                "python",
                "train.py",
                "--lr=0.01",
                "64/s-3",
                "3s",
                "m=",
                "${HOME}"
            ]
        );
        assert!(c.env.contains(&("OUT".into(), "/runs/s-3".into())));
        assert!(c.env.contains(&("LOPPER_PARAM_HIDDEN".into(), "64".into())));
        assert!(
            c.env
                .contains(&("LOPPER_PARAMS".into(), r#"{"hidden":64,"lr":0.01}"#.into()))
        );
        assert!(
            !c.env.iter().any(|(k, _)| k == "SECRET"),
            "valueFrom left out"
        );
        assert_eq!(param_env_name("batch-size.x"), "LOPPER_PARAM_BATCH_SIZE_X");
    }

    #[test]
    fn unknown_and_unterminated_placeholders_are_errors() {
        let p = Params::new();
        assert_eq!(
            command_line(&study(r#"["--lr=${params.lrr}"]"#), 0, &p).unwrap_err(),
            RenderError::UnknownPlaceholder("params.lrr".into())
        );
        assert!(matches!(
            command_line(&study(r#"["--lr=${params.lr"]"#), 0, &p).unwrap_err(),
            RenderError::Unterminated(_)
        ));
    }
}
