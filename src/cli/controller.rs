//! `lopper controller`: runs the operator (Study and Trial reconcilers, HTTP endpoints,
//! leader election).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::controller::leader::LeaseLock;
use crate::controller::{Config, View, run_on as run_controllers};
use crate::metrics::operator::{env_hook_with_sidecar, http_router, run as run_metric_sources};
use crate::metrics::server::{Ready, install_crypto_provider, serve};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Run the operator.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the HTTP server (/metrics, /healthz, /readyz, push reports).
    #[arg(long, env = "LOPPER_METRICS_ADDR", conflicts_with = "port")]
    pub metrics_addr: Option<SocketAddr>,
    /// Port of the HTTP server on all interfaces (default 8080).
    #[arg(long, env = "LOPPER_PORT")]
    pub port: Option<u16>,
    /// Namespace to watch (repeatable); none = all namespaces.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "LOPPER_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Leader election with a Lease (for running two replicas).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set, env = "LOPPER_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "LOPPER_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "lopper-controller")]
    pub lease_name: String,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LOPPER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Reconciles running at once per controller.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Base URL at which trial pods reach this HTTP server (push reports); default
    /// `http://lopper.<pod namespace>.svc:<port>`.
    #[arg(long, env = "LOPPER_REPORT_URL")]
    pub report_url: Option<String>,
    /// Image of the metrics sidecar added to `file` and `tensorboard` trials: the operator's
    /// own (the chart passes the image it deploys).
    #[arg(long, env = "LOPPER_SIDECAR_IMAGE", default_value = crate::metrics::operator::DEFAULT_SIDECAR_IMAGE)]
    pub sidecar_image: String,
    /// Serve the read-only dashboard at /ui/ on the HTTP port.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set, env = "LOPPER_UI")]
    pub ui: bool,
    /// Who may read the dashboard: anyone who reaches the port (`none`, e.g. through
    /// `kubectl port-forward`), or a bearer token that passes a TokenReview and may list
    /// Studies (`token-review`).
    #[arg(long, value_enum, default_value_t = UiAuth::None, env = "LOPPER_UI_AUTH")]
    pub ui_auth: UiAuth,
}

/// The dashboard's access check (see [`crate::ui::auth`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UiAuth {
    None,
    TokenReview,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

fn pod_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE").ok().or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .ok()
            .map(|s| s.trim().to_string())
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    rt.block_on(async_main(args))
}

async fn async_main(args: Args) -> anyhow::Result<ExitCode> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (kubeconfig or in-cluster)")?;
    let addr = args
        .metrics_addr
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], args.port.unwrap_or(8080))));
    install_crypto_provider();
    let ready = Ready::new(false);
    // One view of the watched namespaces, shared by the push endpoint, the controllers and
    // the metric sources; every replica keeps one, so a standby serves reports too.
    let view = View::start(client.clone(), &args.namespaces);
    let mut routes = http_router(view.clone());
    if args.ui {
        let auth = match args.ui_auth {
            UiAuth::None => crate::ui::auth::Auth::None,
            UiAuth::TokenReview => crate::ui::auth::Auth::token_review(client.clone()),
        };
        let source = crate::ui::live::ViewSource::start(view.clone());
        routes = routes.merge(crate::ui::server::router(source, auth));
    }
    let server = tokio::spawn(serve(addr, ready.clone(), routes, std::future::pending()));
    let report_url = args.report_url.clone().unwrap_or_else(|| {
        format!(
            "http://lopper.{}.svc:{}",
            pod_namespace().unwrap_or_else(|| "default".into()),
            addr.port()
        )
    });
    let cfg = Config {
        namespaces: args.namespaces.clone(),
        concurrency: args.concurrency,
        env_hook: Some(env_hook_with_sidecar(
            report_url,
            args.sidecar_image.clone(),
        )),
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    let lock = args.leader_election.then(|| {
        let identity = std::env::var("POD_NAME")
            .ok()
            .or_else(hostname)
            .unwrap_or_else(|| format!("lopper-{}", std::process::id()));
        let ns = args
            .lease_namespace
            .clone()
            .or_else(pod_namespace)
            .unwrap_or_else(|| "default".into());
        LeaseLock::new(
            client.clone(),
            &ns,
            &args.lease_name,
            &identity,
            Duration::from_secs(15),
        )
    });
    // Ready means "can serve reports": any replica can once its view is synced, so
    // readiness must not wait for leadership (a standby would never become Ready).
    client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API")?;
    while !view.ready(Duration::from_secs(30)).await {
        tracing::warn!("the view is not synced yet (waiting for the first lists)");
    }
    ready.set(true);
    let work = async {
        let Some(lock) = &lock else {
            futures::join!(
                run_controllers(view.clone(), cfg.clone()),
                run_metric_sources(view.clone())
            );
            return Ok(());
        };
        // A lost lease (the API unreachable past the renew deadline, another holder) stops
        // leading, not the process: the controllers stop (all their state is in the API),
        // the view and the push endpoint stay, and leadership is sought again.
        loop {
            tracing::info!(lease = %lock.name, identity = %lock.identity, "waiting for leadership");
            lock.acquire().await;
            tracing::info!("leading");
            let controllers = async {
                futures::join!(
                    run_controllers(view.clone(), cfg.clone()),
                    run_metric_sources(view.clone())
                );
            };
            tokio::select! {
                _ = controllers => return Ok::<(), anyhow::Error>(()),
                why = lock.hold_until_lost() => {
                    tracing::warn!(reason = %why, "lost the leader lease; stopped leading, seeking it again");
                }
            }
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = shutdown => { tracing::info!("shutting down"); Ok(()) }
        r = server => match r {
            Ok(Err(e)) => Err(anyhow::anyhow!("HTTP server on {addr}: {e}")),
            _ => Err(anyhow::anyhow!("HTTP server stopped")),
        },
    };
    if let Some(lock) = &lock {
        lock.release().await;
    }
    result.map(|_| ExitCode::SUCCESS)
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
