//! The operator in-process for a test: controllers on a fresh view of one namespace and the
//! HTTP server (push endpoint) on a free loopback port; all stopped when the guard drops.

use std::net::SocketAddr;
use std::time::Duration;

use kube::Client;
use lopper::controller::{Config, EnvHook};
use lopper::metrics::{operator, server};
use tokio::task::JoinHandle;

/// Aborts the operator's tasks when dropped.
pub struct Aborting(pub Vec<JoinHandle<()>>);

impl Drop for Aborting {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Starts the operator for `ns`. `env_hook` gets the push endpoint's base URL; with
/// `metric_manager` the log/Prometheus source manager runs too.
pub async fn spawn(
    client: &Client,
    ns: &str,
    concurrency: u16,
    env_hook: impl FnOnce(String) -> EnvHook,
    metric_manager: bool,
) -> (SocketAddr, Aborting) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = Config {
        namespaces: vec![ns.to_string()],
        concurrency,
        env_hook: Some(env_hook(format!("http://{addr}"))),
    };
    let view = lopper::controller::View::start(client.clone(), &[ns.to_string()]);
    assert!(view.ready(Duration::from_secs(60)).await, "view synced");
    let mut tasks = vec![tokio::spawn(lopper::controller::run_on(view.clone(), cfg))];
    if metric_manager {
        tasks.push(tokio::spawn(operator::run(view.clone())));
    }
    tasks.push(tokio::spawn({
        let extra = operator::http_router(view.clone());
        async move {
            let _ = server::serve_on(
                listener,
                server::Ready::new(true),
                extra,
                std::future::pending(),
            )
            .await;
        }
    }));
    (addr, Aborting(tasks))
}
