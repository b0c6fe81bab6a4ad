//! `lopper sidecar`: the metrics sidecar of a `file` or `tensorboard` trial (see
//! [`crate::sidecar`]). The Job rendering gives it its arguments and the trial's env
//! (`LOPPER_METRIC`, `LOPPER_REPORT_URL`, `LOPPER_TOKEN`); it exits 0 when the trial is pruned
//! or finished, or after SIGTERM once its last records are posted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::metrics::spec::{FileFormat, FileSpec, MetricsSpec, TensorboardSpec};
use crate::sidecar::state::StateFile;
use crate::sidecar::{Config, Outcome};

/// Follow a trial's metrics file or TensorBoard event files and report them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The metrics file to follow (`spec.metrics.file.path`).
    #[arg(
        long,
        required_unless_present = "tensorboard",
        conflicts_with = "tensorboard"
    )]
    pub file: Option<PathBuf>,
    /// Format of the metrics file: csv, jsonl or keyValue.
    #[arg(long, default_value = "csv", value_parser = parse_format)]
    pub format: FileFormat,
    /// The column or key holding the step.
    #[arg(long, default_value = "step")]
    pub step_key: String,
    /// The folder of TensorBoard event files to follow (`spec.metrics.tensorboard.dir`).
    #[arg(long)]
    pub tensorboard: Option<PathBuf>,
    /// The scalar tag of the objective (default: the objective's metric name).
    #[arg(long, requires = "tensorboard")]
    pub tag: Option<String>,
    /// The objective's metric name.
    #[arg(long, env = "LOPPER_METRIC")]
    pub metric: String,
    /// The trial's report URL (the token comes from LOPPER_TOKEN).
    #[arg(long, env = "LOPPER_REPORT_URL")]
    pub report_url: String,
    /// Where the sidecar keeps what it posted (on a volume that outlives the container).
    #[arg(long, env = "LOPPER_SIDECAR_STATE")]
    pub state: Option<PathBuf>,
    /// Time between two reads of the file, e.g. 500ms or 2s.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

fn parse_format(s: &str) -> Result<FileFormat, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("{s:?} is not one of csv, jsonl, keyValue"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Plain text for `kubectl logs`; colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // The token is read from the environment only: an argument would show in `ps`.
    let token = std::env::var("LOPPER_TOKEN")
        .context("LOPPER_TOKEN is not set (the trial's token, from its Secret)")?;
    let (spec, location) = match (&args.file, &args.tensorboard) {
        (Some(f), _) => (
            MetricsSpec::File(FileSpec {
                path: f.display().to_string(),
                format: args.format,
                step_key: args.step_key.clone(),
            }),
            f.clone(),
        ),
        (None, Some(d)) => (
            MetricsSpec::Tensorboard(TensorboardSpec {
                dir: d.display().to_string(),
                tag: args.tag.clone(),
            }),
            d.clone(),
        ),
        (None, None) => anyhow::bail!("one of --file, --tensorboard is required"),
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    crate::metrics::server::install_crypto_provider();
    let cfg = Config {
        spec,
        metric: args.metric,
        location,
        report_url: args.report_url,
        token,
        state: StateFile::new(args.state),
        interval: args.interval,
        // Within the pod's default 30 s grace period.
        final_deadline: Duration::from_secs(20),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let outcome = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        crate::sidecar::run(cfg, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })?;
    tracing::info!(?outcome, "sidecar done");
    match outcome {
        Outcome::Pruned | Outcome::Finished | Outcome::Stopped | Outcome::AlreadyStopped => {
            Ok(ExitCode::SUCCESS)
        }
    }
}
