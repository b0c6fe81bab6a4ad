//! `lopper replay --input FILE|-`: replays recorded learning curves through a pruner and
//! prints the outcome as JSON. Malformed input exits with code 2.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::engine::replay::{ReplayInput, replay};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Replay input (JSON or YAML): `{study, direction, pruner, trials: [{steps?, values}]}`;
    /// `-` reads standard input.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Pretty-print the JSON output.
    #[arg(long)]
    pub pretty: bool,
    /// Replay N times and print the fastest replay's duration on stderr (benchmarking).
    #[arg(long, value_name = "N")]
    pub time: Option<u32>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let read = if args.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")
            .map(|_| s)
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading {}", args.input.display()))
    };
    let text = match read {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let source = args.input.display().to_string();
    let input = match ReplayInput::parse(&text) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {source}: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(n) = args.time {
        let mut best = f64::INFINITY;
        for _ in 0..n.max(1) {
            let t0 = std::time::Instant::now();
            let out = replay(&input);
            best = best.min(t0.elapsed().as_secs_f64());
            std::hint::black_box(out).ok();
        }
        eprintln!("replay took {best:e} s (best of {})", n.max(1));
    }
    let out = match replay(&input) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {source}: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // Straight into the locked stdout through one large buffer: no intermediate string,
    // no per-write locking, a few large writes.
    let mut w = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = if args.pretty {
        serde_json::to_writer_pretty(&mut w, &out)
    } else {
        serde_json::to_writer(&mut w, &out)
    };
    written
        .map_err(std::io::Error::from)
        .and_then(|()| w.write_all(b"\n"))
        .and_then(|()| w.flush())
        .context("writing the output")?;
    // The process ends here: freeing thousands of curves one by one would only cost time.
    std::mem::forget((input, out));
    Ok(ExitCode::SUCCESS)
}
