//! `lopper plot`: learning curves of a study, from a results file of `lopper run` or from
//! the Trials of a Study in the cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::plot::PlotOptions;
use crate::runner::results::Results;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A results file written by `lopper run --output`.
    #[arg(required_unless_present = "study", conflicts_with = "study")]
    pub results: Option<PathBuf>,
    /// Where to write the plot (.png or .svg).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Objective on a log scale.
    #[arg(long)]
    pub log_y: bool,
    /// Read the Trials of this Study from the cluster instead of a results file.
    #[arg(long)]
    pub study: Option<String>,
    /// Namespace of the Study (default: the kubeconfig's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Picture size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1400x1000")]
    pub size: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (width, height) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .filter(|&(w, h): &(u32, u32)| w >= 200 && h >= 200)
        .ok_or_else(|| anyhow::anyhow!("--size must be WIDTHxHEIGHT, at least 200x200"))?;
    let results = match (&args.results, &args.study) {
        (Some(path), _) => Results::read(path)?,
        (None, Some(study)) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::plot::cluster::results_of_study(
                study,
                args.namespace.as_deref(),
            ))?
        }
        (None, None) => anyhow::bail!("give a results file or --study NAME"),
    };
    let opts = PlotOptions {
        log_y: args.log_y,
        width,
        height,
    };
    crate::plot::plot(&results, &args.output, &opts)?;
    println!(
        "{}: {} trials plotted",
        args.output.display(),
        results.trials.len()
    );
    Ok(ExitCode::SUCCESS)
}
