//! `lopper replay --input FILE|-`: replays recorded learning curves through a pruner and
//! prints the outcome as JSON. Malformed input exits with code 2.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::engine::replay::{ReplayError, ReplayInput, replay};

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
    let parsed = match read_and_parse(&args.input) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let source = args.input.display().to_string();
    let input = match parsed {
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

/// Reads the input (`-`: standard input) and parses it; `Err` when it cannot be read.
/// A non-empty regular file is mapped into memory rather than copied: for a large input
/// the copy (fresh pages to fault in and fill) costs over a tenth of the whole process.
fn read_and_parse(path: &Path) -> anyhow::Result<Result<ReplayInput, ReplayError>> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(ReplayInput::parse(&text));
    }
    let reading = || format!("reading {}", path.display());
    let mut file = File::open(path).with_context(reading)?;
    if let Some(map) = map(&file)
        && let Ok(mapped) = std::str::from_utf8(&map)
    {
        return Ok(ReplayInput::parse(mapped));
    }
    // Not a non-empty regular file, or not UTF-8: read it, failing as reading fails.
    file.read_to_string(&mut text).with_context(reading)?;
    Ok(ReplayInput::parse(&text))
}

/// `file` mapped into memory (its pages all mapped at once), if it is a non-empty regular
/// file.
fn map(file: &File) -> Option<memmap2::Mmap> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    // SAFETY: the mapping is read-only and private and nothing here writes to the file; it
    // stays sound as long as no other process changes the file while the replay reads it
    // (an input rewritten under a running replay is not a supported use).
    unsafe { memmap2::MmapOptions::new().populate().map(file) }.ok()
}
