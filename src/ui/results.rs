//! The dashboard's data from a results file (`lopper ui results.json`, `lopper run --ui`).
//!
//! The file is read again when its modification time changes (checked every second), so the
//! page follows a `lopper run` that rewrites it after each finished trial; each change is
//! pushed to the browsers as updates. Under `lopper run --ui` the loop also hands over every
//! report as it records it ([`ResultsSource::follow_reports`]), so running trials' curves grow
//! between writes of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use futures::future::BoxFuture;
use tokio::sync::broadcast;

use super::Source;
use super::model::{ConditionRow, Curves, StudyPage, StudyRow, TrialPage, TrialRow, Update};
use crate::engine::TrialState;
use crate::runner::LiveReport;
use crate::runner::results::{Results, TrialResult};

/// Studies from a results file are shown in this namespace.
pub const NAMESPACE: &str = "local";

pub struct ResultsSource {
    path: PathBuf,
    state: Mutex<(Option<SystemTime>, Arc<Results>)>,
    tx: broadcast::Sender<Update>,
    /// Reports come from the loop too (`lopper run --ui`): a re-read keeps newer ones.
    reports: std::sync::atomic::AtomicBool,
    /// Bumped (under `state`'s lock) whenever the results change.
    version: std::sync::atomic::AtomicU64,
    /// The study page's JSON and curves of one version: a 10,000-trial study takes a moment to
    /// encode, so it is done once per change (ahead of the first browser after a read of the
    /// file), not once per request.
    rendered: Mutex<Option<(u64, Bytes, Bytes)>>,
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
            reports: false.into(),
            version: 0.into(),
            rendered: Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<Results> {
        crate::controller::view::lock(&self.state).1.clone()
    }

    /// The page's JSON and curves of the current results (built if they changed since).
    fn rendered(&self) -> Option<(Bytes, Bytes)> {
        let mut cache = crate::controller::view::lock(&self.rendered);
        let (version, r) = {
            let st = crate::controller::view::lock(&self.state);
            (
                self.version.load(std::sync::atomic::Ordering::Relaxed),
                st.1.clone(),
            )
        };
        if let Some((v, page, curves)) = &*cache
            && *v == version
        {
            return Some((page.clone(), curves.clone()));
        }
        let page = match serde_json::to_vec(&study_page(&r)) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::warn!(error = %e, "encoding the study page");
                return None;
            }
        };
        let curves = Bytes::from(study_curves(&r).encode());
        *cache = Some((version, page.clone(), curves.clone()));
        Some((page, curves))
    }

    /// Builds the page of the current results in the background.
    fn warm(self: &Arc<Self>) {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.rendered());
    }

    fn changed(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Re-reads the file every second while it changes; pushes the study and the trials that
    /// changed. Runs until the process ends.
    pub async fn follow(self: Arc<Self>) {
        self.warm();
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
            let (old, new) = {
                let mut st = crate::controller::view::lock(&self.state);
                let old = st.1.clone();
                let new = if self.reports.load(std::sync::atomic::Ordering::Relaxed) {
                    keep_newer_reports(&old, new)
                } else {
                    new
                };
                *st = (mtime, Arc::new(new.clone()));
                self.changed();
                (old, new)
            };
            self.warm();
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

impl ResultsSource {
    /// Applies the loop's reports as they come (a burst at once: one update per trial) and
    /// pushes them. Runs until the loop drops its sender.
    pub async fn follow_reports(
        self: Arc<Self>,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<LiveReport>,
    ) {
        self.reports
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 1024).await > 0 {
            let updates = {
                let mut st = crate::controller::view::lock(&self.state);
                // Cloned only if a page is being built from it right now.
                let r = Arc::make_mut(&mut st.1);
                self.changed();
                apply_reports(r, &batch)
            };
            batch.clear();
            for u in updates {
                let _ = self.tx.send(u);
            }
        }
    }
}

/// Records `reports` in `r`; returns the updates to push: each touched trial with its points
/// from the first step reported, and the study when a trial started or was pruned.
fn apply_reports(r: &mut Results, reports: &[LiveReport]) -> Vec<Update> {
    let mut touched: BTreeMap<u64, i64> = BTreeMap::new();
    let mut study_changed = false;
    for rep in reports {
        let i = match r.trials.binary_search_by_key(&rep.number, |t| t.number) {
            Ok(i) => i,
            Err(i) => {
                r.trials.insert(
                    i,
                    TrialResult {
                        number: rep.number,
                        state: TrialState::Running,
                        params: rep.params.clone(),
                        value: None,
                        pruned_at_step: None,
                        intermediate: Vec::new(),
                        seconds: 0.0,
                        reason: None,
                        message: None,
                        stderr_tail: None,
                        rungs: Default::default(),
                    },
                );
                study_changed = true;
                i
            }
        };
        let t = &mut r.trials[i];
        // A report about a trial the file already shows finished is old news.
        if t.state != TrialState::Running {
            continue;
        }
        match t.intermediate.binary_search_by_key(&rep.step, |p| p.0) {
            Ok(j) => t.intermediate[j].1 = rep.value,
            Err(j) => t.intermediate.insert(j, (rep.step, rep.value)),
        }
        t.seconds = rep.seconds;
        if rep.state == TrialState::Pruned {
            t.state = TrialState::Pruned;
            t.value = t.intermediate.last().map(|p| p.1);
            t.pruned_at_step = Some(rep.step);
            t.reason = rep.reason.clone();
            t.message = rep.message.clone();
            study_changed = true;
        }
        let from = touched.entry(rep.number).or_insert(rep.step);
        *from = (*from).min(rep.step);
    }
    let mut updates = Vec::new();
    if study_changed {
        r.summarize();
        updates.push(Update::Study {
            study: study_row(r),
        });
    }
    for (number, from) in touched {
        let Ok(i) = r.trials.binary_search_by_key(&number, |t| t.number) else {
            continue;
        };
        let t = &r.trials[i];
        updates.push(Update::Trial {
            namespace: NAMESPACE.into(),
            study: r.study.clone(),
            trial: trial_row(r, t),
            points: t
                .intermediate
                .iter()
                .filter(|p| p.0 >= from)
                .copied()
                .collect(),
        });
    }
    updates
}

/// The file is written only when a trial finishes: what it shows of a running trial (or of a
/// trial started since) can be older than the reports already applied. Keeps the newer.
fn keep_newer_reports(old: &Results, mut new: Results) -> Results {
    let mut added = false;
    for o in &old.trials {
        match new.trials.binary_search_by_key(&o.number, |t| t.number) {
            Ok(i) => {
                let n = &mut new.trials[i];
                if n.state == TrialState::Running
                    && (o.state == TrialState::Pruned
                        || o.intermediate.len() > n.intermediate.len())
                {
                    *n = o.clone();
                }
            }
            // Started (and maybe pruned) since the file was written.
            Err(i) if o.state == TrialState::Running || o.state == TrialState::Pruned => {
                new.trials.insert(i, o.clone());
                added = true;
            }
            Err(_) => {}
        }
    }
    if added {
        new.summarize();
    }
    new
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
        max_trials: r.max_trials,
        completed: count(TrialState::Complete),
        running: count(TrialState::Running),
        // Local trials start at once: nothing waits for quota.
        queued: 0,
        pruned: count(TrialState::Pruned),
        failed: count(TrialState::Failed),
        gpu_hours: None,
        gpu_hours_saved: None,
        created: None,
        pruner: r.pruner.clone(),
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
    StudyPage::new(
        study_row(r),
        params.into_iter().cloned().collect(),
        r.trials.iter().map(|t| trial_row(r, t)).collect(),
    )
}

pub fn study_curves(r: &Results) -> Curves {
    let mut curves = Curves::default();
    for t in &r.trials {
        curves.push(t.number, &t.intermediate);
    }
    curves
}

impl Source for ResultsSource {
    fn studies(&self) -> Vec<StudyRow> {
        vec![study_row(&self.current())]
    }

    fn study(&self, namespace: &str, name: &str) -> Option<StudyPage> {
        let r = self.current();
        (namespace == NAMESPACE && name == r.study).then(|| study_page(&r))
    }

    fn curves(&self, namespace: &str, name: &str) -> Option<Curves> {
        let r = self.current();
        (namespace == NAMESPACE && name == r.study).then(|| study_curves(&r))
    }

    fn study_json(&self, namespace: &str, name: &str) -> Option<Bytes> {
        (namespace == NAMESPACE && name == self.current().study)
            .then(|| self.rendered())?
            .map(|r| r.0)
    }

    fn curves_binary(&self, namespace: &str, name: &str) -> Option<Bytes> {
        (namespace == NAMESPACE && name == self.current().study)
            .then(|| self.rendered())?
            .map(|r| r.1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ParamValue, Params};

    fn results(trials: Vec<TrialResult>) -> Results {
        let mut r: Results = serde_json::from_value(serde_json::json!({
            "study": "s", "direction": "minimize", "objective": "loss", "best": null,
            "trials": [], "stepsRun": 0, "stepsSavedEstimate": 0
        }))
        .unwrap();
        r.trials = trials;
        r.summarize();
        r
    }

    fn params() -> Params {
        let mut p = Params::new();
        p.insert("x".into(), ParamValue::Float(0.5));
        p
    }

    fn report(number: u64, step: i64, value: f64, pruned: bool) -> LiveReport {
        LiveReport {
            number,
            params: params(),
            step,
            value,
            state: if pruned {
                TrialState::Pruned
            } else {
                TrialState::Running
            },
            reason: pruned.then(|| "MedianPruner".to_string()),
            message: pruned.then(|| "worse than the median".to_string()),
            seconds: 1.0,
        }
    }

    #[test]
    fn reports_grow_running_curves_and_prune_with_the_reason() {
        let mut r = results(Vec::new());
        let updates = apply_reports(
            &mut r,
            &[report(0, 0, 0.9, false), report(0, 1, 0.7, false)],
        );
        // A new trial changes the study's counts; its update carries both points.
        assert!(matches!(&updates[0], Update::Study { study } if study.running == 1));
        match &updates[1] {
            Update::Trial { trial, points, .. } => {
                assert_eq!(trial.state, "Running");
                assert_eq!(trial.step, Some(1));
                assert_eq!(points, &[(0, 0.9), (1, 0.7)]);
            }
            u => panic!("{u:?}"),
        }
        let updates = apply_reports(&mut r, &[report(0, 2, 0.8, true)]);
        match &updates[1] {
            Update::Trial { trial, points, .. } => {
                assert_eq!(trial.state, "Pruned");
                assert_eq!(trial.reason.as_deref(), Some("MedianPruner"));
                assert_eq!(points, &[(2, 0.8)]);
            }
            u => panic!("{u:?}"),
        }
        // After the pruning, nothing more is recorded for it.
        assert!(
            apply_reports(&mut r, &[report(0, 3, 0.1, false)])
                .iter()
                .all(|u| matches!(u, Update::Study { .. }))
        );
        assert_eq!(r.trials[0].intermediate.len(), 3);
    }

    #[test]
    fn a_reread_file_never_takes_newer_reports_back() {
        let mut live = results(Vec::new());
        apply_reports(
            &mut live,
            &[
                report(0, 0, 0.9, false),
                report(0, 1, 0.7, false),
                report(1, 0, 0.5, false),
            ],
        );
        // The file as written when trial 0 had one point and trial 1 had not started.
        let mut older = live.clone();
        older.trials.truncate(1);
        older.trials[0].intermediate.truncate(1);
        let kept = keep_newer_reports(&live, older);
        assert_eq!(kept.trials.len(), 2);
        assert_eq!(kept.trials[0].intermediate, [(0, 0.9), (1, 0.7)]);
        // A file that has the trial finished wins.
        let mut done = live.clone();
        done.trials[0].state = TrialState::Complete;
        done.trials[0].intermediate.push((2, 0.6));
        let kept = keep_newer_reports(&live, done);
        assert_eq!(kept.trials[0].state, TrialState::Complete);
        assert_eq!(kept.trials[0].intermediate.len(), 3);
    }
}
