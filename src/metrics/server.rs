//! The operator's HTTP port (default 8080): `/metrics` (the default Prometheus registry),
//! `/healthz`, `/readyz`, and whatever extra routes are merged in (the push endpoint).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// The default HTTP address of the operator.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";

/// A readiness flag shared between the server and whoever decides readiness.
#[derive(Clone, Debug, Default)]
pub struct Ready(pub Arc<AtomicBool>);

impl Ready {
    pub fn new(ready: bool) -> Self {
        Ready(Arc::new(AtomicBool::new(ready)))
    }
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Installs the `ring` rustls crypto provider for reqwest (`rustls-no-provider`); idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The text exposition of `prometheus::default_registry()`.
pub fn render_metrics() -> String {
    use prometheus::Encoder;
    // Make sure the metric-source telemetry is registered even before the first observation.
    let _ = super::telemetry::telemetry();
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&prometheus::default_registry().gather(), &mut buf) {
        tracing::warn!(error = %e, "encoding /metrics failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// `/metrics`, `/healthz`, `/readyz` merged with `extra` (e.g. [`super::push::router`]).
pub fn router(ready: Ready, extra: Router) -> Router {
    let base = Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render_metrics(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.get() {
                        (StatusCode::OK, "ready").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                    }
                }
            }),
        );
    base.merge(extra)
}

/// Binds `addr` and serves [`router`] until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    ready: Ready,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, ready, extra, shutdown).await
}

/// Like [`serve`] on an already bound listener.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    ready: Ready,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(ready, extra))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_status(app: &Router, path: &str) -> (u16, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let s = resp.status().as_u16();
        let b = axum::body::to_bytes(resp.into_body(), 1 << 22)
            .await
            .unwrap();
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn health_ready_metrics() {
        let ready = Ready::new(false);
        let app = router(ready.clone(), Router::new());
        assert_eq!(get_status(&app, "/healthz").await.0, 200);
        assert_eq!(get_status(&app, "/readyz").await.0, 503);
        ready.set(true);
        assert_eq!(get_status(&app, "/readyz").await.0, 200);
        super::super::telemetry::observed("push", 1);
        let (s, body) = get_status(&app, "/metrics").await;
        assert_eq!(s, 200);
        assert!(body.contains("lopper_metric_observations_total"), "{body}");
    }
}
