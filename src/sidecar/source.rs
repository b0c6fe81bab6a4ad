//! A trial's metric source on disk, `file` or `tensorboard`, followed by polling: the same
//! code serves the sidecar in a pod and `lopper run` on this machine.
//!
//! [`Follower::poll`] returns the objective's new `(step, value)` points, each step after the
//! last one returned (a repeated or lower step is dropped, as the push endpoint would ignore
//! it), plus the errors met on the way (a corrupt record names its file and offset; it is
//! skipped). [`Follower::finish`] is the last poll: a partial last line counts, and bytes left
//! in an event file are a truncated record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::tail::{Change, Tail};
use crate::metrics::file::FileParser;
use crate::metrics::parser::{LineBuffer, MAX_LINE_BYTES};
use crate::metrics::spec::{FileSpec, MetricsSpec, TensorboardSpec};
use crate::metrics::tensorboard::EventStream;

/// Why a follower cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("spec.metrics.{0} is not read from files (only file and tensorboard are)")]
    NotAFileSource(&'static str),
    #[error("{0}")]
    Spec(String),
}

/// One poll's result.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Polled {
    pub points: Vec<(i64, f64)>,
    pub errors: Vec<String>,
}

/// Follows the file or event files of one trial.
#[derive(Debug)]
pub struct Follower {
    kind: Kind,
    last_step: Option<i64>,
}

#[derive(Debug)]
enum Kind {
    File {
        tail: Tail,
        lines: LineBuffer,
        parser: FileParser,
    },
    Tensorboard {
        dir: PathBuf,
        tag: String,
        files: BTreeMap<PathBuf, (Tail, EventStream)>,
    },
}

impl Follower {
    /// A follower of `spec` for the objective `metric`, reading the path `location` (the
    /// spec's path in a pod; `lopper run` maps it into the trial's folder).
    pub fn new(spec: &MetricsSpec, metric: &str, location: &Path) -> Result<Self, SourceError> {
        let kind = match spec {
            MetricsSpec::File(f) => Self::file(f, metric, location)?,
            MetricsSpec::Tensorboard(t) => Self::tensorboard(t, metric, location),
            other => return Err(SourceError::NotAFileSource(other.source())),
        };
        Ok(Follower {
            kind,
            last_step: None,
        })
    }

    fn file(spec: &FileSpec, metric: &str, path: &Path) -> Result<Kind, SourceError> {
        let parser = FileParser::new(spec, metric)
            .map_err(|e| SourceError::Spec(e.to_string().replace(".logs.", ".file.")))?;
        Ok(Kind::File {
            tail: Tail::new(path),
            lines: LineBuffer::new(MAX_LINE_BYTES),
            parser,
        })
    }

    fn tensorboard(spec: &TensorboardSpec, metric: &str, dir: &Path) -> Kind {
        Kind::Tensorboard {
            dir: dir.to_path_buf(),
            tag: spec.tag_or(metric).to_string(),
            files: BTreeMap::new(),
        }
    }

    /// Points at or below `step` were handled before (e.g. by a sidecar before its restart):
    /// they are not returned again.
    pub fn resume_after(&mut self, step: Option<i64>) {
        self.last_step = self.last_step.max(step);
    }

    /// What is new since the last poll.
    pub fn poll(&mut self) -> Polled {
        self.read(false)
    }

    /// The last poll: what is new, plus a partial last line or truncated record.
    pub fn finish(&mut self) -> Polled {
        self.read(true)
    }

    fn read(&mut self, last: bool) -> Polled {
        let mut out = Polled::default();
        let mut raw = Vec::new();
        match &mut self.kind {
            Kind::File {
                tail,
                lines,
                parser,
            } => {
                let changes = tail.read().unwrap_or_else(|e| {
                    out.errors
                        .push(format!("reading {}: {e}", tail.path().display()));
                    Vec::new()
                });
                for c in changes {
                    match c {
                        Change::Reset => {
                            // A partial line of the old file is as complete as it will get.
                            if let Some(l) = lines.finish() {
                                raw.extend(parser.feed(&l));
                            }
                            parser.new_file();
                        }
                        Change::Data(d) => {
                            for l in lines.push(&d) {
                                raw.extend(parser.feed(&l));
                            }
                        }
                    }
                }
                if last && let Some(l) = lines.finish() {
                    raw.extend(parser.feed(&l));
                }
            }
            Kind::Tensorboard { dir, tag, files } => {
                for path in event_files(dir) {
                    files.entry(path.clone()).or_insert_with(|| {
                        let name = path.display().to_string();
                        (Tail::new(&path), EventStream::new(name, tag.clone()))
                    });
                }
                for (path, (tail, stream)) in files.iter_mut() {
                    let changes = tail.read().unwrap_or_else(|e| {
                        out.errors.push(format!("reading {}: {e}", path.display()));
                        Vec::new()
                    });
                    for c in changes {
                        let parsed = match c {
                            Change::Reset => {
                                out.errors.extend(stream.finish().map(|e| e.to_string()));
                                stream.reset();
                                continue;
                            }
                            Change::Data(d) => stream.push(&d),
                        };
                        raw.extend(parsed.points);
                        out.errors
                            .extend(parsed.errors.iter().map(ToString::to_string));
                    }
                    if last {
                        out.errors.extend(stream.finish().map(|e| e.to_string()));
                    }
                }
            }
        }
        for (step, value) in raw {
            if self.last_step.is_some_and(|l| step <= l) {
                continue;
            }
            self.last_step = Some(step);
            out.points.push((step, value));
        }
        for e in &out.errors {
            tracing::warn!(error = %e, "metrics: record skipped");
        }
        out
    }
}

/// The event files under `dir` (any depth, at most 4 folders down), sorted by path: names
/// start `events.out.tfevents.<time>`, so one run's files come in the order written.
fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() && depth < 4 {
                stack.push((p, depth + 1));
            } else if t.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("tfevents"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
