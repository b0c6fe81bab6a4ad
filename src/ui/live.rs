//! The dashboard's data from the operator's in-memory view (`/ui/` on the operator's port).
//!
//! Pages are built from the view's stores; updates come from its broadcast channels, turned
//! into [`Update`]s once by [`ViewSource::forward`] and fanned out to every browser, so the
//! number of browsers changes no request to the API. The only API request is a trial page's
//! Events (one list per page load; Events are not watched). Nothing here reads a Secret or a
//! pod: Study, Trial, Job, CurveChunk and Event objects only.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tokio::sync::broadcast;

use super::Source;
use super::model::{
    ConditionRow, Curves, EventRow, JobRow, StudyPage, StudyRow, TrialPage, TrialRow, Update,
};
use crate::controller::View;
use crate::crd::{Study, Trial};

pub struct ViewSource {
    view: Arc<View>,
    tx: broadcast::Sender<Update>,
}

impl ViewSource {
    /// A source on `view`; spawns the task that forwards its changes (needs a runtime).
    pub fn start(view: Arc<View>) -> Arc<Self> {
        let s = Arc::new(ViewSource {
            view,
            tx: broadcast::channel(4096).0,
        });
        tokio::spawn(s.clone().forward());
        s
    }

    /// Turns the view's study and trial events into updates until the view's channels close.
    async fn forward(self: Arc<Self>) {
        let mut studies = self.view.study_events.subscribe();
        let mut trials = self.view.trial_events.subscribe();
        loop {
            let update = tokio::select! {
                s = studies.recv() => match s {
                    Ok(s) => Update::Study { study: study_row(&s) },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "dashboard fell behind the view's study events");
                        continue;
                    }
                    Err(_) => return,
                },
                t = trials.recv() => match t {
                    // Nobody watching: a report costs the operator nothing here.
                    Ok(_) if self.tx.receiver_count() == 0 => continue,
                    Ok(t) => Update::Trial {
                        namespace: t.namespace().unwrap_or_default(),
                        study: t.spec.study.clone(),
                        trial: trial_row(&t),
                        points: t
                            .status
                            .iter()
                            .flat_map(|s| &s.intermediate)
                            .map(|p| (p.step, p.value.unwrap_or(f64::NAN)))
                            .collect(),
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "dashboard fell behind the view's trial events");
                        continue;
                    }
                    Err(_) => return,
                },
            };
            // No browser listening is not an error.
            let _ = self.tx.send(update);
        }
    }

    fn curve(&self, t: &Trial) -> Vec<(i64, f64)> {
        let ns = t.namespace().unwrap_or_default();
        // A chunk not in the store yet: show the newest points rather than nothing.
        let sealed = self
            .view
            .sealed_points(&ns, &t.name_any(), t.curve_chunks())
            .unwrap_or_default();
        t.record_with(&sealed)
            .intermediate
            .into_iter()
            .collect::<Vec<_>>()
    }
}

fn condition_row(c: &Condition) -> ConditionRow {
    ConditionRow {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

pub fn study_row(s: &Study) -> StudyRow {
    let st = s.status.clone().unwrap_or_default();
    let counts = st.trials.clone().unwrap_or_default();
    let message = st
        .conditions
        .iter()
        .find(|c| c.status == "True" && c.type_ != "Ready")
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_default();
    StudyRow {
        namespace: s.namespace().unwrap_or_default(),
        name: s.name_any(),
        phase: st.phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
        objective: s.spec.objective.metric.clone(),
        direction: s.spec.objective.direction,
        best: st.best.as_ref().map(|b| b.value),
        best_trial: st.best.as_ref().map(|b| b.number),
        max_trials: s.spec.max_trials,
        completed: counts.completed,
        running: counts.running,
        queued: counts.queued,
        pruned: counts.pruned,
        failed: counts.failed,
        gpu_hours: st.gpu_seconds.as_ref().map(|g| g.used / 3600.0),
        gpu_hours_saved: st.gpu_seconds.as_ref().map(|g| g.saved_by_pruning / 3600.0),
        created: s
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        pruner: s
            .spec
            .pruner
            .as_ref()
            .map_or("none", |p| p.key())
            .to_string(),
        message,
    }
}

pub fn trial_row(t: &Trial) -> TrialRow {
    let st = t.status.clone().unwrap_or_default();
    let phase = t.phase();
    // The condition named after the phase says why (the pruner, the Job's failure).
    let why = st.conditions.iter().find(|c| c.type_ == phase.as_str());
    let seconds = st
        .start_time
        .as_ref()
        .zip(st.completion_time.as_ref())
        .map(|(a, b)| (b.0.as_millisecond() - a.0.as_millisecond()) as f64 / 1000.0);
    TrialRow {
        number: t.spec.number,
        name: t.name_any(),
        state: phase.as_str().to_string(),
        params: t.spec.params.clone(),
        value: st.value,
        step: st.last_step,
        reason: why.map(|c| c.reason.clone()),
        message: why.map(|c| c.message.clone()),
        seconds,
    }
}

fn job_row(j: &Job) -> JobRow {
    let st = j.status.clone().unwrap_or_default();
    JobRow {
        name: j.name_any(),
        active: st.active.unwrap_or(0),
        succeeded: st.succeeded.unwrap_or(0),
        failed: st.failed.unwrap_or(0),
        conditions: st
            .conditions
            .unwrap_or_default()
            .iter()
            .map(|c| ConditionRow {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

impl Source for ViewSource {
    fn studies(&self) -> Vec<StudyRow> {
        let mut rows: Vec<StudyRow> = self
            .view
            .all_studies()
            .iter()
            .map(|s| study_row(s))
            .collect();
        rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        rows
    }

    fn study(&self, namespace: &str, name: &str) -> Option<StudyPage> {
        let s = self.view.study(namespace, name)?;
        let mut trials = self.view.study_trials(namespace, name);
        trials.sort_by_key(|t| t.spec.number);
        Some(StudyPage::new(
            study_row(&s),
            s.spec.parameters.iter().map(|p| p.name.clone()).collect(),
            trials.iter().map(|t| trial_row(t)).collect(),
        ))
    }

    fn curves(&self, namespace: &str, name: &str) -> Option<Curves> {
        self.view.study(namespace, name)?;
        let mut trials = self.view.study_trials(namespace, name);
        trials.sort_by_key(|t| t.spec.number);
        let mut curves = Curves::default();
        for t in &trials {
            curves.push(t.spec.number, &self.curve(t));
        }
        Some(curves)
    }

    fn trial(&self, namespace: &str, study: &str, number: u64) -> BoxFuture<'_, Option<TrialPage>> {
        let found = self.view.study(namespace, study).and_then(|s| {
            let t = self
                .view
                .study_trials(namespace, study)
                .into_iter()
                .find(|t| t.spec.number == number)?;
            Some((s, t))
        });
        let ns = namespace.to_string();
        Box::pin(async move {
            let (s, t) = found?;
            let job = t
                .status
                .as_ref()
                .and_then(|st| st.job.as_deref())
                .and_then(|j| self.view.job(&ns, j))
                .map(|j| job_row(&j));
            let events = events(&self.view.client, &ns, &t.name_any()).await;
            Some(TrialPage {
                study: study_row(&s),
                trial: trial_row(&t),
                curve: self.curve(&t),
                conditions: t
                    .status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .map(condition_row)
                    .collect(),
                job,
                events,
            })
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.tx.subscribe()
    }
}

/// The Trial's Events, newest last; none when they cannot be listed (the page still shows).
async fn events(client: &kube::Client, ns: &str, trial: &str) -> Vec<EventRow> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Trial,involvedObject.name={trial}"
    ));
    match api.list(&lp).await {
        Ok(list) => {
            let mut rows: Vec<EventRow> = list
                .items
                .into_iter()
                .map(|e| EventRow {
                    type_: e.type_.unwrap_or_default(),
                    reason: e.reason.unwrap_or_default(),
                    message: e.message.unwrap_or_default(),
                    count: e.count.unwrap_or(1),
                    last: e
                        .last_timestamp
                        .map(|t| t.0.to_string())
                        .or_else(|| e.event_time.map(|t| t.0.to_string())),
                })
                .collect();
            rows.sort_by(|a, b| a.last.cmp(&b.last));
            rows
        }
        Err(e) => {
            tracing::debug!(namespace = ns, trial, error = %e, "listing a trial's events");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{StudyStatus, TrialCounts};

    #[test]
    fn the_study_row_counts_queued_trials() {
        let mut s = crate::workload::job::tests::study(serde_json::json!({}), Some(1));
        s.status = Some(StudyStatus {
            trials: Some(TrialCounts {
                running: 2,
                queued: 3,
                pruned: 1,
                ..Default::default()
            }),
            ..Default::default()
        });
        let row = study_row(&s);
        assert_eq!((row.running, row.queued, row.pruned), (2, 3, 1));
        assert_eq!(
            (row.namespace.as_str(), row.name.as_str()),
            ("ns", "digits")
        );
    }
}
