//! `lopper run FILE`: the Study manifest `kubectl apply` takes, run locally, trials as
//! subprocesses (see [`crate::runner`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Study manifest (YAML, the CRD's schema).
    pub file: PathBuf,
    /// Trials running at once (overrides spec.parallelism).
    #[arg(long, short = 'p')]
    pub parallelism: Option<u32>,
    /// Total trials (overrides spec.maxTrials).
    #[arg(long)]
    pub max_trials: Option<u32>,
    /// Write the results as JSON here (after every finished trial and at the end).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Plot the learning curves here at the end (.png or .svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Working directory of the trials (default: the manifest's folder).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// An earlier results file whose trials feed the sampler (repeatable).
    #[arg(long = "warm-start", value_name = "RESULTS")]
    pub warm_start: Vec<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when a trial is stopped (default: the pod's
    /// terminationGracePeriodSeconds, else 30).
    #[arg(long, value_name = "SECONDS")]
    pub grace: Option<f64>,
    /// Echo every line the trials print.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Plain log lines even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Serve the dashboard on this loopback port while the study runs (it follows the
    /// `--output` file; afterwards: `lopper ui RESULTS`).
    #[arg(long, value_name = "PORT", requires = "output")]
    pub ui: Option<u16>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let opts = crate::runner::RunOptions {
        parallelism: args.parallelism,
        max_trials: args.max_trials,
        workdir: args.workdir,
        output: args.output.clone(),
        warm_start: args.warm_start,
        grace: args.grace.map(|g| Duration::from_secs_f64(g.max(0.0))),
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        verbose: args.verbose,
        live: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut opts = opts;
    if let (Some(port), Some(out)) = (args.ui, &args.output) {
        opts.live = Some(rt.block_on(serve_ui(port, &args.file, out))?);
    }
    let results = rt.block_on(crate::runner::run(&args.file, opts))?;
    print!("{}", crate::runner::ui::summary(&results));
    if let Some(out) = &args.output {
        println!("results: {}", out.display());
        if args.ui.is_some() {
            println!("dashboard closed; again with: lopper ui {}", out.display());
        }
    }
    if let Some(plot) = &args.plot {
        crate::plot::plot(&results, plot, &crate::plot::PlotOptions::default())?;
        println!("plot: {}", plot.display());
    }
    Ok(match results.phase.as_str() {
        "Succeeded" => ExitCode::SUCCESS,
        "Interrupted" => ExitCode::from(130),
        _ => ExitCode::from(1),
    })
}

/// Starts the dashboard on `port` of loopback: the study of `manifest` as the loop reports
/// (the returned sender) and as it writes `results` (after each finished trial).
async fn serve_ui(
    port: u16,
    manifest: &std::path::Path,
    results: &std::path::Path,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedSender<crate::runner::LiveReport>> {
    use crate::ui::results::ResultsSource;
    let study = crate::runner::LocalStudy::load(manifest)?;
    let empty = serde_json::from_value(serde_json::json!({
        "study": study.name, "direction": study.direction, "objective": study.metric,
        "phase": "Running", "best": null, "trials": [], "stepsRun": 0, "stepsSavedEstimate": 0,
        "maxTrials": study.max_trials, "pruner": study.pruner.key()
    }))?;
    // A results file left by an earlier run is not this study: shown once this run rewrites it.
    let mtime = std::fs::metadata(results).and_then(|m| m.modified()).ok();
    let source = ResultsSource::with(results, mtime, empty);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(source.clone().follow_reports(rx));
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
    println!("dashboard: http://{}/ui/", listener.local_addr()?);
    tokio::spawn(source.clone().follow());
    tokio::spawn(async move {
        if let Err(e) =
            crate::ui::server::serve_local(listener, source, std::future::pending()).await
        {
            tracing::warn!(error = %e, "the dashboard stopped");
        }
    });
    Ok(tx)
}
