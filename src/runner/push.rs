//! The push endpoint on loopback for `metrics: {push: {}}` studies run locally: the
//! operator's route ([`crate::metrics::push::router`]) with a local [`ReportSink`] that hands
//! each report to the study loop, so a pushing trainer runs unchanged.
//!
//! Every trial gets a random token (`LOPPER_TOKEN`) and its URL (`LOPPER_REPORT_URL`,
//! `http://127.0.0.1:PORT/v1/namespaces/local/trials/<trial>/report`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use super::Event;
use crate::metrics::push::{ReportError, ReportSink, objective_value, report_path, tokens_match};

/// The namespace local trials report under.
pub const NAMESPACE: &str = "local";

/// The loop's answer to one pushed report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushAnswer {
    /// Accepted; `true` means the trial is pruned and must stop.
    Prune(bool),
    /// The trial has already finished (`true`: it was pruned).
    Finished(bool),
    /// No such trial.
    Unknown,
}

struct LocalSink {
    objective: String,
    /// Trial name → (index, token).
    trials: Mutex<HashMap<String, (usize, String)>>,
    tx: mpsc::UnboundedSender<Event>,
}

impl ReportSink for LocalSink {
    fn report<'a>(
        &'a self,
        namespace: &'a str,
        trial: &'a str,
        bearer_token: &'a str,
        step: i64,
        metrics: &'a BTreeMap<String, f64>,
    ) -> BoxFuture<'a, Result<bool, ReportError>> {
        Box::pin(async move {
            let known = self
                .trials
                .lock()
                .map_err(|_| ReportError::Unavailable("lock poisoned".into()))?
                .get(trial)
                .cloned();
            let Some((idx, token)) = known.filter(|_| namespace == NAMESPACE) else {
                // Unknown trial: the same answer as a wrong token (reveal nothing).
                return Err(ReportError::Unauthorized);
            };
            if !tokens_match(bearer_token, &token) {
                return Err(ReportError::Unauthorized);
            }
            if step < 0 {
                return Err(ReportError::BadRequest("step must not be negative".into()));
            }
            let value = objective_value(metrics, &self.objective)?;
            let (reply, answer) = oneshot::channel();
            self.tx
                .send(Event::Push {
                    idx,
                    step,
                    value,
                    reply,
                })
                .map_err(|_| ReportError::Unavailable("the study has ended".into()))?;
            match answer.await {
                Ok(PushAnswer::Prune(p)) => Ok(p),
                Ok(PushAnswer::Finished(pruned)) => Err(ReportError::Finished {
                    trial: trial.to_string(),
                    phase: if pruned { "Pruned" } else { "Finished" }.into(),
                    prune: pruned,
                }),
                Ok(PushAnswer::Unknown) => Err(ReportError::NotFound(trial.to_string())),
                Err(_) => Err(ReportError::Unavailable("the study has ended".into())),
            }
        })
    }
}

/// The endpoint, served until [`PushServer::stop`].
pub struct PushServer {
    sink: Arc<LocalSink>,
    base: String,
    shutdown: Option<oneshot::Sender<()>>,
}

impl PushServer {
    /// Serves on 127.0.0.1 on a free port.
    pub async fn start(
        tx: mpsc::UnboundedSender<Event>,
        objective: &str,
    ) -> anyhow::Result<PushServer> {
        let sink = Arc::new(LocalSink {
            objective: objective.to_string(),
            trials: Mutex::new(HashMap::new()),
            tx,
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let app = crate::metrics::push::router(sink.clone());
        let (shutdown, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(PushServer {
            sink,
            base,
            shutdown: Some(shutdown),
        })
    }

    /// Registers trial `idx` named `trial`; returns its `LOPPER_TOKEN` and `LOPPER_REPORT_URL`.
    pub fn register(&self, idx: usize, trial: &str) -> Vec<(String, String)> {
        let mut bytes = [0u8; 24];
        rand::rng().fill(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if let Ok(mut m) = self.sink.trials.lock() {
            m.insert(trial.to_string(), (idx, token.clone()));
        }
        vec![
            ("LOPPER_TOKEN".to_string(), token),
            (
                "LOPPER_REPORT_URL".to_string(),
                format!("{}{}", self.base, report_path(NAMESPACE, trial)),
            ),
        ]
    }

    /// Kept for symmetry: a finished trial stays known, so late reports get 409.
    pub fn unregister(&self, _idx: usize) {}

    pub fn stop(mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}
