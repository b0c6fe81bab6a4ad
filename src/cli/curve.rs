//! `lopper curve TRIAL`: a Trial's whole learning curve from the cluster, sealed chunks
//! included, one `step value` line per point (or JSON), since `status.intermediate` is
//! stored compactly and holds only the newest points.

use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Trial's name.
    pub trial: String,
    /// Namespace of the Trial (default: the kubeconfig's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// `text` (`step value` lines) or `json` (`[{"step": 0, "value": 0.5}, ...]`; NaN as
    /// null, infinities as "Infinity" / "-Infinity").
    #[arg(long, short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let points = rt.block_on(crate::plot::cluster::curve_of_trial(
        &args.trial,
        args.namespace.as_deref(),
    ))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.output == "json" {
        serde_json::to_writer(&mut out, &points)?;
        writeln!(out)?;
    } else {
        for p in &points {
            match p.value {
                Some(v) => writeln!(out, "{} {v}", p.step)?,
                None => writeln!(out, "{} NaN", p.step)?,
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
