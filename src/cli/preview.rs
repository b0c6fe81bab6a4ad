//! `lopper preview FILE`: what a Study will spend, before anything runs: its budget and, for
//! the `asha` planner, every bracket's rungs (step and trials reaching it), the expected
//! spend and how many trials reach full length.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::crd::Study;
use crate::engine::planner::Plan;
use crate::engine::pruners::PrunerSpec;
use crate::engine::pruners::spec::AshaSpec;

/// Print the plan of a Study manifest.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Study manifest (YAML, the CRD's schema).
    pub file: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let study = read_study(&text).with_context(|| format!("in {}", args.file.display()))?;
    let pruner = study.pruner();
    if args.json {
        let plan = match &pruner {
            PrunerSpec::Asha(a) => Some(a.plan()),
            _ => None,
        };
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", describe(&study, &pruner));
    }
    Ok(ExitCode::SUCCESS)
}

/// The first `kind: Study` document, checked as the operator checks it.
fn read_study(text: &str) -> anyhow::Result<Study> {
    use serde::Deserialize;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).context("not valid YAML")?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("Study") {
            continue;
        }
        // Through JSON, as the API server sees it (see runner::manifest).
        let study: Study =
            serde_json::from_value(serde_json::to_value(&value)?).context("not a valid Study")?;
        crate::workload::spec::validate(&study).map_err(|e| anyhow::anyhow!(e))?;
        return Ok(study);
    }
    anyhow::bail!("no `kind: Study` document")
}

/// The preview's text.
pub fn describe(study: &Study, pruner: &PrunerSpec) -> String {
    let mut out = String::new();
    let name = study.metadata.name.as_deref().unwrap_or("");
    let budget = study
        .spec
        .budget
        .map(|b| {
            format!(
                "budget {} (onSpent: {})",
                b.limits(),
                serde_json::to_value(b.on_spent)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_else(|| "no budget".into());
    let max = study
        .spec
        .max_trials
        .map(|m| format!(", at most {m} trials"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "study {name}: {budget}{max}, parallelism {}, pruner {}",
        study.spec.parallelism,
        pruner.key()
    );
    match pruner {
        PrunerSpec::Asha(a) => plan_table(&mut out, a, &a.plan()),
        _ => {
            let _ = writeln!(
                out,
                "no plan: only the asha pruner plans brackets and rungs from the budget"
            );
        }
    }
    out
}

fn plan_table(out: &mut String, a: &AshaSpec, plan: &Plan) {
    let input = a.input();
    let _ = writeln!(
        out,
        "asha plan: mode {}, {} steps a full trial, reduction factor {}, planned for {} steps and {} parallel trials",
        input.mode.as_str(),
        input.max_steps,
        input.reduction_factor,
        input.budget_steps,
        input.parallelism
    );
    let _ = writeln!(
        out,
        "{:<8} {:>7} {:>12} {:>9}  rungs (step: trials reaching it)",
        "bracket", "trials", "full length", "steps"
    );
    for (i, b) in plan.brackets.iter().enumerate() {
        let rungs: Vec<String> = b
            .rungs
            .iter()
            .map(|r| format!("{}: {}", r.step, r.trials))
            .collect();
        let _ = writeln!(
            out,
            "{:<8} {:>7} {:>12} {:>9}  {}",
            i,
            b.trials(),
            b.full_length(),
            b.steps,
            rungs.join(" · ")
        );
    }
    let _ = writeln!(
        out,
        "{:<8} {:>7} {:>12} {:>9}  expected spend {} of {} steps ({:.0}%)",
        "total",
        plan.trials,
        plan.full_length_trials,
        plan.steps,
        plan.steps,
        input.budget_steps,
        if input.budget_steps == 0 {
            0.0
        } else {
            100.0 * plan.steps as f64 / input.budget_steps as f64
        }
    );
    if let Some(b) = plan.startup_bracket() {
        let _ = writeln!(
            out,
            "bracket {b} runs first: its {} trials run to full length before any trial is stopped",
            plan.brackets[b].trials()
        );
        let _ = writeln!(
            out,
            "no rung stops a trial as good at that step as the best of them was (it may spend more than planned; the budget cuts it)"
        );
    }
    if plan.full_length_trials == 0 {
        let _ = writeln!(
            out,
            "warning: no trial reaches full length: the budget is below one {}-step trial",
            input.max_steps
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUDY: &str = r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {name: digits}
spec:
  objective: {metric: val_loss}
  parameters: [{name: lr, float: {low: 0.001, high: 0.1, log: true}}]
  pruner: {asha: {mode: standard, maxSteps: 27}}
  budget: {steps: 1200}
  parallelism: 2
  trialTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: t, image: x, command: [python, train.py]}]
"#;

    #[test]
    fn preview_prints_every_bracket_and_the_spend() {
        let study = read_study(STUDY).unwrap();
        let text = describe(&study, &study.pruner());
        assert!(
            text.starts_with(
                "study digits: budget 1200 steps (onSpent: finish), parallelism 2, pruner asha\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("planned for 1200 steps and 2 parallel trials"),
            "{text}"
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(['0', '1', '2']))
            .collect();
        assert_eq!(
            rows.len(),
            3,
            "standard mode on 4 rungs: 2 brackets and a full-length one\n{text}"
        );
        assert!(
            rows[0].ends_with("1: 134 · 3: 44 · 9: 14 · 27: 4"),
            "{text}"
        );
        assert!(rows[2].ends_with("  27: 14"), "{text}");
        assert!(
            text.contains(
                "bracket 2 runs first: its 14 trials run to full length before any trial is stopped"
            ),
            "{text}"
        );
        assert!(
            text.contains("no rung stops a trial as good at that step as the best of them was"),
            "{text}"
        );
        let plan = match study.pruner() {
            PrunerSpec::Asha(a) => a.plan(),
            _ => unreachable!(),
        };
        assert!(plan.steps <= 1200);
        assert!(text.contains(&format!("expected spend {} of 1200 steps", plan.steps)));
    }

    #[test]
    fn a_study_without_budget_is_refused_for_asha() {
        let no_budget = STUDY.replace("  budget: {steps: 1200}\n", "  maxTrials: 5\n");
        let e = read_study(&no_budget).unwrap_err().to_string();
        assert!(
            e.contains("spec.pruner: pruner.asha.budgetSteps: is required"),
            "{e}"
        );
        let neither = STUDY.replace("  budget: {steps: 1200}\n", "");
        let e = read_study(&neither).unwrap_err().to_string();
        assert_eq!(e, "spec.maxTrials is required unless spec.budget is set");
    }
}
