//! `lopper ui results.json`: the dashboard of a finished (or running) `lopper run`, on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::ui::results::ResultsSource;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A results file written by `lopper run --output` (followed while it changes).
    pub results: PathBuf,
    /// Port to serve on (0: any free port; the address is printed).
    #[arg(long, short = 'p', default_value_t = 8090)]
    pub port: u16,
    /// Address to bind (loopback by default: the dashboard has no login).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub address: IpAddr,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let source = ResultsSource::open(&args.results)?;
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.address, args.port))
            .await
            .with_context(|| format!("binding {}:{}", args.address, args.port))?;
        println!("dashboard: http://{}/ui/", listener.local_addr()?);
        tokio::spawn(source.clone().follow());
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        crate::ui::server::serve_local(listener, source, shutdown)
            .await
            .context("serving the dashboard")
    })?;
    Ok(ExitCode::SUCCESS)
}
