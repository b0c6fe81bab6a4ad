//! The dashboard's routes, all under `/ui/` (the operator merges them into its HTTP port;
//! `lopper ui` serves them alone). Read-only: every route is a GET.
//!
//! ```text
//! /ui/                                        the page (hash routes: #/, #/study/NS/NAME, #/trial/NS/STUDY/N)
//! /ui/app.js, style.css, uplot.min.{js,css}   embedded assets
//! /ui/api/studies                             [StudyRow]
//! /ui/api/studies/NS/NAME                     StudyPage
//! /ui/api/studies/NS/NAME/curves              Curves (binary, `Curves::encode`)
//! /ui/api/studies/NS/NAME/trials/N            TrialPage
//! /ui/api/events                              server-sent Updates
//! ```

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::Source;
use super::auth::Auth;

type Shared = Arc<dyn Source>;

/// The dashboard's routes on `source`, each checked by `auth`.
pub fn router(source: Shared, auth: Auth) -> Router {
    let api = Router::new()
        .route("/ui/api/studies", get(studies))
        .route("/ui/api/studies/{ns}/{name}", get(study))
        .route("/ui/api/studies/{ns}/{name}/curves", get(curves))
        .route("/ui/api/studies/{ns}/{name}/trials/{number}", get(trial))
        .route("/ui/api/events", get(events))
        .route("/ui/", get(|| async { asset("") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
        .with_state(source);
    auth.layer(api)
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
}

/// `router` plus a redirect from `/` (for `lopper ui` and `lopper run --ui`).
pub fn local_router(source: Shared) -> Router {
    router(source, Auth::None).route("/", get(|| async { Redirect::temporary("/ui/") }))
}

fn asset(path: &str) -> Response {
    match super::assets::get(path) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                // The page is small and changes with the binary: no stale copies after an upgrade.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "encoding a dashboard response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn studies(State(s): State<Shared>) -> Response {
    json(&s.studies())
}

async fn study(State(s): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    // Building a 10,000-trial page takes a while: off the async workers.
    match tokio::task::spawn_blocking(move || s.study_json(&ns, &name)).await {
        Ok(Some(body)) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn curves(State(s): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    // Fetched beside the page (the browser asks for both at once): also off the async workers.
    match tokio::task::spawn_blocking(move || s.curves_binary(&ns, &name)).await {
        Ok(Some(body)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn trial(
    State(s): State<Shared>,
    Path((ns, name, number)): Path<(String, String, u64)>,
) -> Response {
    match s.trial(&ns, &name, number).await {
        Some(p) => json(&p),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn events(State(s): State<Shared>) -> Response {
    super::sse::stream(s.subscribe()).into_response()
}

/// Serves the local dashboard on `listener` until `shutdown` resolves.
pub async fn serve_local(
    listener: tokio::net::TcpListener,
    source: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, local_router(source))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::results::Results;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (u16, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let s = resp.status().as_u16();
        let b = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn routes_serve_the_page_and_the_results() {
        let r: Results = serde_json::from_value(serde_json::json!({
            "study": "s", "direction": "minimize", "objective": "loss", "best": null,
            "stepsRun": 3, "stepsSavedEstimate": 0,
            "trials": [
                {"number": 0, "state": "complete", "params": {"lr": 0.1}, "value": 0.5,
                 "prunedAtStep": null, "intermediate": [[0, 0.9], [1, 0.5]], "seconds": 1.0},
                {"number": 1, "state": "pruned", "params": {"lr": 0.3}, "value": 0.8,
                 "prunedAtStep": 0, "intermediate": [[0, 0.8]], "seconds": 1.0,
                 "reason": "MedianPruner"}
            ]
        }))
        .unwrap();
        let mut r = r;
        r.summarize();
        let app = local_router(super::super::results::ResultsSource::with(
            std::path::Path::new("/nonexistent/results.json"),
            None,
            r,
        ));
        let (s, html) = get(&app, "/ui/").await;
        assert_eq!(s, 200);
        assert!(html.contains("app.js"), "{html}");
        assert_eq!(get(&app, "/ui/uplot.min.js").await.0, 200);
        assert_eq!(get(&app, "/ui/nothing.js").await.0, 404);
        let (s, body) = get(&app, "/ui/api/studies").await;
        assert_eq!(s, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["name"], "s");
        assert_eq!(v[0]["best"], 0.5);
        assert_eq!(
            (v[0]["completed"].clone(), v[0]["pruned"].clone()),
            (1.into(), 1.into())
        );
        let (s, body) = get(&app, "/ui/api/studies/local/s").await;
        assert_eq!(s, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["trials"][1]["reason"], "MedianPruner");
        let resp = app
            .clone()
            .oneshot(
                Request::get("/ui/api/studies/local/s/curves")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let b = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        let u32s = |at: usize, k: usize| -> Vec<u32> {
            (0..k)
                .map(|i| u32::from_le_bytes(b[at + 4 * i..at + 4 * i + 4].try_into().unwrap()))
                .collect()
        };
        // 2 trials, 3 points, narrow steps; then trials (f64), offsets, steps (i32), values.
        assert_eq!(u32s(0, 4), [2, 3, 0, 0]);
        assert_eq!(u32s(16 + 16, 3), [0, 2, 3], "offsets");
        assert_eq!(u32s(16 + 16 + 12, 3), [0, 1, 0], "steps");
        let v0 = f32::from_le_bytes(b[16 + 16 + 12 + 12..][..4].try_into().unwrap());
        assert_eq!(v0, 0.9);
        assert_eq!(b.len(), 16 + 16 + 12 + 12 + 12);
        let (s, body) = get(&app, "/ui/api/studies/local/s/trials/1").await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("\"curve\":[[0,0.8]]"), "{body}");
        assert_eq!(get(&app, "/ui/api/studies/local/other").await.0, 404);
        assert_eq!(get(&app, "/ui/api/studies/local/s/trials/9").await.0, 404);
    }
}
