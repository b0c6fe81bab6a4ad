//! `spec.budget` on the real local control plane (`e2e/cluster.sh`): the operator runs in
//! the test process watching only the test's namespace; the test plays the trainers through
//! `lopper::controller::observe`. A spent budget stops trial creation, ends the Study
//! `BudgetSpent`, and its status shows spent and left.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use lopper::controller::{Config, ObserveError, View, observe};
use lopper::crd::{Study, StudyPhase, Trial, TrialPhase};
use support::{TestNamespace, wait_for};
use tokio::task::JoinHandle;

async fn setup(prefix: &str) -> (Client, TestNamespace, JoinHandle<()>) {
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    let cfg = Config {
        namespaces: vec![ns.name.clone()],
        concurrency: 4,
        ..Default::default()
    };
    let op = tokio::spawn(lopper::controller::run(client.clone(), cfg));
    (client, ns, op)
}

/// A Study with a budget and no maxTrials, whose fake pods exit after `exit_after`.
fn study(name: &str, budget: &str, exit_after: &str) -> Study {
    let y = format!(
        r#"
apiVersion: lopper.dev/v1alpha1
kind: Study
metadata: {{name: {name}}}
spec:
  objective: {{metric: val_loss}}
  parameters: [{{name: lr, float: {{low: 0.0001, high: 0.5, log: true}}}}]
  sampler: {{random: {{seed: 5}}}}
  budget: {budget}
  parallelism: 2
  metrics: {{push: {{}}}}
  trialTemplate:
    metadata:
      annotations: {{lopper.dev/fake-exit-after: {exit_after}}}
    spec:
      template:
        spec:
          containers: [{{name: trainer, image: trainer:fake, args: ["--lr=${{params.lr}}"]}}]
"#
    );
    serde_yaml::from_str(&y).expect("study manifest")
}

async fn trials(client: &Client, ns: &str) -> Vec<Trial> {
    Api::<Trial>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list trials")
        .items
}

/// Plays the trainers: each unfinished trial reports one more step every 300 ms, up to
/// `steps`.
fn spawn_feeder(client: Client, ns: String, steps: i64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let view = View::start(client.clone(), std::slice::from_ref(&ns));
        assert!(view.ready(Duration::from_secs(60)).await, "view synced");
        let mut next: BTreeMap<String, i64> = BTreeMap::new();
        loop {
            for t in trials(&client, &ns).await {
                if t.phase().is_finished() {
                    continue;
                }
                let step = next.entry(t.name_any()).or_insert(0);
                if *step >= steps {
                    continue;
                }
                let v = 1.0 / (*step as f64 + 1.0) + t.spec.number as f64 * 0.01;
                match observe(&view, &ns, &t.name_any(), &[(*step, v)]).await {
                    Ok(_) | Err(ObserveError::Finished { .. }) => *step += 1,
                    Err(e) => eprintln!("observe {}: {e}", t.name_any()),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

async fn finished(client: &Client, ns: &str, name: &str) -> Option<Study> {
    let s = Api::<Study>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    s.status
        .as_ref()?
        .phase
        .filter(|p| p.is_finished())
        .map(|_| s.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spent_step_budget_stops_creating_trials_and_running_ones_finish() {
    let (client, ns, op) = setup("budget-fin").await;
    // 12 steps, 5 a trial, 2 at once: the first two spend 10, the next ones spend the rest
    // while running and finish (their fake pods exit after 6 s).
    let s = study("fin", "{steps: 12}", "6s");
    Api::<Study>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &s)
        .await
        .expect("admission accepts a study without maxTrials when it has a budget");
    let feeder = spawn_feeder(client.clone(), ns.name.clone(), 5);
    let done = wait_for(Duration::from_secs(120), || {
        finished(&client, &ns.name, "fin")
    })
    .await;
    feeder.abort();
    let all = trials(&client, &ns.name).await;
    let phases: Vec<_> = all.iter().map(|t| (t.spec.number, t.phase())).collect();
    let study = done.unwrap_or_else(|| panic!("study did not finish; trials {phases:?}"));
    let st = study.status.unwrap();
    assert_eq!(st.phase, Some(StudyPhase::Succeeded), "{phases:?}");
    let cond = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Succeeded")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "BudgetSpent")
    );
    assert!(
        cond.message.contains("budgeted steps reported"),
        "{}",
        cond.message
    );
    // Trials 0 and 1 spent 10; a third (and a fourth, if it started before the third had
    // reported twice) spent the rest; none after.
    assert!((3..=4).contains(&all.len()), "{phases:?}");
    assert!(
        all.iter().all(|t| t.phase() == TrialPhase::Completed),
        "running trials finish: {phases:?}"
    );
    let reported: u64 = all
        .iter()
        .map(|t| t.status.as_ref().map_or(0, |s| s.intermediate.len() as u64))
        .sum();
    let b = st.budget.expect("status.budget");
    assert_eq!(b.steps_spent, Some(reported));
    assert!(reported > 12, "finishing trials overshoot: {reported}");
    assert_eq!(b.steps_left, Some(0));
    assert_eq!(b.summary, format!("{reported}/12 steps"));
    assert_eq!(st.progress.as_deref(), Some(&*format!("{}/-", all.len())));
    // Stays ended: no trial appears later.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(trials(&client, &ns.name).await.len(), all.len());
    op.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_spent_stop_prunes_running_trials_and_deletes_their_jobs() {
    let (client, ns, op) = setup("budget-stop").await;
    let s = study("stop", "{steps: 6, onSpent: stop}", "600s");
    Api::<Study>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &s)
        .await
        .expect("create study");
    let feeder = spawn_feeder(client.clone(), ns.name.clone(), 50);
    let done = wait_for(Duration::from_secs(90), || {
        finished(&client, &ns.name, "stop")
    })
    .await;
    feeder.abort();
    let study = done.expect("study ends once 6 steps are reported");
    let st = study.status.unwrap();
    assert_eq!(st.phase, Some(StudyPhase::Succeeded));
    assert!(
        st.conditions.iter().any(|c| c.type_ == "Succeeded"
            && c.reason == "BudgetSpent"
            && c.message.contains("onSpent: stop")),
        "{:?}",
        st.conditions
    );
    let all = trials(&client, &ns.name).await;
    assert_eq!(all.len(), 2, "only the first two trials ever started");
    for t in &all {
        let ts = t.status.as_ref().unwrap();
        assert_eq!(ts.phase, Some(TrialPhase::Pruned), "{}", t.name_any());
        let c = ts.conditions.iter().find(|c| c.type_ == "Pruned").unwrap();
        assert_eq!(c.reason, "BudgetSpent");
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let gone = wait_for(Duration::from_secs(10), || {
        let jobs = jobs.clone();
        async move {
            let l = jobs.list(&ListParams::default()).await.ok()?;
            l.items.is_empty().then_some(())
        }
    })
    .await;
    assert!(gone.is_some(), "the stopped trials' Jobs are deleted");
    let b = st.budget.unwrap();
    assert!(
        b.steps_spent.unwrap() >= 6 && b.steps_left == Some(0),
        "{b:?}"
    );
    op.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_names_the_budget_fields() {
    let client = support::cluster().await;
    support::apply_crds(&client).await;
    let ns = TestNamespace::new(&client, "budget-adm").await;
    let api: Api<Study> = Api::namespaced(client.clone(), &ns.name);
    let mut neither = study("neither", "{steps: 1}", "1s");
    neither.spec.budget = None;
    let e = api
        .create(&PostParams::default(), &neither)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.maxTrials is required unless spec.budget is set"),
        "{e}"
    );
    let empty = study("empty", "{onSpent: stop}", "1s");
    let e = api
        .create(&PostParams::default(), &empty)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.budget needs at least one of steps, gpuHours"),
        "{e}"
    );
}
