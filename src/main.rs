use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use lopper::cli;

/// Hyperparameter-tuning studies on Kubernetes, with Optuna-exact pruning.
#[derive(Parser)]
#[command(name = "lopper", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (reconciles Studies and Trials).
    Controller(cli::controller::Args),
    /// Print the CustomResourceDefinitions as YAML.
    Crd(cli::crd::Args),
    /// Run a Study manifest locally, trials as subprocesses.
    Run(cli::run::Args),
    /// Replay recorded learning curves through a pruner.
    Replay(cli::replay::Args),
    /// Print what a Study will spend before it runs (the asha planner's brackets and rungs).
    Preview(cli::preview::Args),
    /// Print a Trial's whole learning curve from the cluster (sealed chunks included).
    Curve(cli::curve::Args),
    /// Plot learning curves from a results file or a study in the cluster.
    Plot(cli::plot::Args),
    /// Follow a trial's metrics file or TensorBoard events and report them (the metrics sidecar).
    Sidecar(cli::sidecar::Args),
    /// Serve the dashboard of a results file (`lopper run --output`) on loopback.
    Ui(cli::ui::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Controller(a) => cli::controller::run(a),
        Command::Crd(a) => cli::crd::run(a),
        Command::Run(a) => cli::run::run(a),
        Command::Replay(a) => cli::replay::run(a),
        Command::Preview(a) => cli::preview::run(a),
        Command::Curve(a) => cli::curve::run(a),
        Command::Plot(a) => cli::plot::run(a),
        Command::Sidecar(a) => cli::sidecar::run(a),
        Command::Ui(a) => cli::ui::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
