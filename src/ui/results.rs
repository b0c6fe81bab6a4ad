//! The dashboard's data from a results file (`lopper ui results.json`, `lopper run --ui`).
//!
//! The file is read again when its modification time changes (checked every second), so the
//! page follows a `lopper run` that rewrites it after each finished trial; each change is
//! pushed to the browsers as updates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::broadcast;

use super::Source;
use super::model::{ConditionRow, Curves, StudyPage, StudyRow, TrialPage, TrialRow, Update};
use crate::engine::TrialState;
use crate::runner::results::{Results, TrialResult};

/// Studies from a results file are shown in this namespace.
pub const NAMESPACE: &str = "local";

pub struct ResultsSource {
    path: PathBuf,
    state: Mutex<(Option<SystemTime>, Arc<Results>)>,
    tx: broadcast::Sender<Update>,
}

#[derive(Debug, thiserror::Error)]
#[error("results file {path}: {source}")]
pub struct ReadError {
    path: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn read(path: &Path) -> Result<(Option<SystemTime>, Results), ReadError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| ReadError {
        path: path.display().to_string(),
        source,
    };
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| err(e.into()))?;
    let text = std::fs::read_to_string(path).map_err(|e| err(e.into()))?;
    let results = serde_json::from_str(&text).map_err(|e| err(e.into()))?;
    Ok((Some(mtime), results))
}

impl ResultsSource {
    /// Reads `path` now (an unreadable file is an error here, not later).
    pub fn open(path: &Path) -> Result<Arc<Self>, ReadError> {
        let (mtime, results) = read(path)?;
        Ok(Self::with(path, mtime, results))
    }

    /// A source of `results` (kept in memory; `path` is watched for newer versions).
    pub fn with(path: &Path, mtime: Option<SystemTime>, results: Results) -> Arc<Self> {
        Arc::new(ResultsSource {
            path: path.to_path_buf(),
            state: Mutex::new((mtime, Arc::new(results))),
            tx: broadcast::channel(1024).0,
        })
    }

    fn current(&self) -> Arc<Results> {
        crate::controller::view::lock(&self.state).1.clone()
    }

    /// Re-reads the file every second while it changes; pushes the study and the trials that
    /// changed. Runs until the process ends.
    pub async fn follow(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let mtime = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            let known = crate::controller::view::lock(&self.state).0;
            if mtime.is_none() || mtime == known {
                continue;
            }
            // A half-written file (the writer renames, but be safe) is retried next tick.
            let Ok((mtime, new)) = read(&self.path) else {
                continue;
            };
            let old = {
                let mut st = crate::controller::view::lock(&self.state);
                let old = st.1.clone();
                *st = (mtime, Arc::new(new.clone()));
                old
            };
            let before: BTreeMap<u64, TrialRow> = old
                .trials
                .iter()
                .map(|t| (t.number, trial_row(&old, t)))
                .collect();
            let _ = self.tx.send(Update::Study {
                study: study_row(&new),
            });
            for t in &new.trials {
                let row = trial_row(&new, t);
                if before.get(&t.number) != Some(&row) {
                    let _ = self.tx.send(Update::Trial {
                        namespace: NAMESPACE.into(),
                        study: new.study.clone(),
                        trial: row,
                        points: t.intermediate.clone(),
                    });
                }
            }
        }
    }
}

fn state_name(s: TrialState) -> &'static str {
    match s {
        TrialState::Running => "Running",
        TrialState::Complete => "Completed",
        TrialState::Pruned => "Pruned",
        TrialState::Failed => "Failed",
    }
}

pub fn study_row(r: &Results) -> StudyRow {
    let count = |s| r.trials.iter().filter(|t| t.state == s).count() as u32;
    StudyRow {
        namespace: NAMESPACE.into(),
        name: r.study.clone(),
        phase: if r.phase.is_empty() {
            "Running".into()
        } else {
            r.phase.clone()
        },
        objective: r.objective.clone(),
        direction: r.direction,
        best: r.best.as_ref().map(|b| b.value),
        best_trial: r.best.as_ref().map(|b| b.number),
        max_trials: None,
        completed: count(TrialState::Complete),
        running: count(TrialState::Running),
        pruned: count(TrialState::Pruned),
        failed: count(TrialState::Failed),
        gpu_hours: None,
        gpu_hours_saved: None,
        created: None,
        pruner: String::new(),
        message: r.reason.clone(),
    }
}

pub fn trial_row(r: &Results, t: &TrialResult) -> TrialRow {
    TrialRow {
        number: t.number,
        name: format!("{}-{}", r.study, t.number),
        state: state_name(t.state).into(),
        params: t.params.clone(),
        value: t.value,
        step: t.intermediate.last().map(|p| p.0),
        reason: t.reason.clone(),
        message: t.message.clone(),
        seconds: Some(t.seconds),
    }
}

/// The study page of a results file (parameter names: every name any trial has, sorted).
pub fn study_page(r: &Results) -> StudyPage {
    let params: BTreeSet<&String> = r.trials.iter().flat_map(|t| t.params.keys()).collect();
    let mut curves = Curves::default();
    for t in &r.trials {
        curves.push(t.number, t.intermediate.iter().copied());
    }
    StudyPage::new(
        study_row(r),
        params.into_iter().cloned().collect(),
        r.trials.iter().map(|t| trial_row(r, t)).collect(),
        curves,
    )
}

impl Source for ResultsSource {
    fn studies(&self) -> Vec<StudyRow> {
        vec![study_row(&self.current())]
    }

    fn study(&self, namespace: &str, name: &str) -> Option<StudyPage> {
        let r = self.current();
        (namespace == NAMESPACE && name == r.study).then(|| study_page(&r))
    }

    fn trial(&self, namespace: &str, study: &str, number: u64) -> BoxFuture<'_, Option<TrialPage>> {
        let r = self.current();
        let page = (namespace == NAMESPACE && study == r.study)
            .then(|| r.trials.iter().find(|t| t.number == number))
            .flatten()
            .map(|t| {
                let row = trial_row(&r, t);
                let conditions = row
                    .reason
                    .iter()
                    .map(|reason| ConditionRow {
                        type_: row.state.clone(),
                        status: "True".into(),
                        reason: reason.clone(),
                        message: t
                            .message
                            .clone()
                            .or_else(|| t.stderr_tail.clone())
                            .unwrap_or_default(),
                    })
                    .collect();
                TrialPage {
                    study: study_row(&r),
                    trial: row,
                    curve: t.intermediate.clone(),
                    conditions,
                    job: None,
                    events: Vec::new(),
                }
            });
        Box::pin(async move { page })
    }

    fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.tx.subscribe()
    }
}
