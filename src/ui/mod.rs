//! The read-only dashboard (`/ui/`): served by the operator from its in-memory view
//! ([`live::ViewSource`]), and locally by `lopper ui results.json` and `lopper run --ui PORT`
//! ([`results::ResultsSource`]). One JSON API ([`model`]), one server ([`server`]), the
//! front-end embedded in the binary ([`assets`], built from `ui/`).

pub mod assets;
pub mod auth;
pub mod live;
pub mod model;
pub mod results;
pub mod server;
pub mod sse;

use axum::body::Bytes;
use futures::future::BoxFuture;
use tokio::sync::broadcast;

use model::{Curves, StudyPage, StudyRow, TrialPage, Update};

/// Where the dashboard's data comes from. Every method reads memory (or a local file): no
/// request to the Kubernetes API per browser, except a trial page's Events (one list per
/// page load).
pub trait Source: Send + Sync + 'static {
    fn studies(&self) -> Vec<StudyRow>;
    fn study(&self, namespace: &str, name: &str) -> Option<StudyPage>;
    /// Every trial's curve of the study, for its page.
    fn curves(&self, namespace: &str, name: &str) -> Option<Curves>;
    /// [`Source::study`] as JSON (a source may keep it between changes).
    fn study_json(&self, namespace: &str, name: &str) -> Option<Bytes> {
        let page = self.study(namespace, name)?;
        match serde_json::to_vec(&page) {
            Ok(b) => Some(b.into()),
            Err(e) => {
                tracing::warn!(error = %e, "encoding a study page");
                None
            }
        }
    }
    /// [`Source::curves`] encoded ([`Curves::encode`]; a source may keep it between changes).
    fn curves_binary(&self, namespace: &str, name: &str) -> Option<Bytes> {
        self.curves(namespace, name).map(|c| c.encode().into())
    }
    fn trial(&self, namespace: &str, study: &str, number: u64) -> BoxFuture<'_, Option<TrialPage>>;
    /// Updates as they happen (each browser's events stream subscribes).
    fn subscribe(&self) -> broadcast::Receiver<Update>;
}
