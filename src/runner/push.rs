//! The push endpoint on loopback for `metrics: {push: {}}` studies run locally.

use tokio::sync::mpsc;

use super::Event;

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

pub struct PushServer {
    _tx: mpsc::UnboundedSender<Event>,
}

impl PushServer {
    pub async fn start(
        tx: mpsc::UnboundedSender<Event>,
        _metric: &str,
    ) -> anyhow::Result<PushServer> {
        let _ = tx;
        anyhow::bail!("metrics: push is not supported by `lopper run` yet")
    }

    pub fn register(&self, _idx: usize, _trial: &str) -> Vec<(String, String)> {
        Vec::new()
    }

    pub fn unregister(&self, _idx: usize) {}

    pub fn stop(self) {}
}
