//! The events stream (`api/events`): every [`Update`] as a server-sent event named after its
//! kind. A browser that falls behind gets `resync` and reloads what it shows.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast;

use super::model::Update;

pub fn stream(
    rx: broadcast::Receiver<Update>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(u) => {
                let name = match &u {
                    Update::Study { .. } => "study",
                    Update::Trial { .. } => "trial",
                };
                match Event::default().event(name).json_data(&u) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "encoding a dashboard update");
                        Event::default().event("resync").data("")
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Event::default().event("resync").data("")
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    // Keep-alives let proxies and `kubectl port-forward` keep an idle stream open.
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
