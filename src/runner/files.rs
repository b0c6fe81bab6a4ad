//! `file` and `tensorboard` sources under `lopper run`: the trial's metrics path is mapped into
//! a folder of its own under the working directory, `.lopper/<trial>/` standing for the pod's
//! `/` (so `/logs/tb` is `.lopper/digits-3/logs/tb`, given to the trainer as
//! `LOPPER_METRICS_PATH`), and followed with the sidecar's code ([`crate::sidecar::Follower`])
//! in this process: no sidecar process locally.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Event;
use crate::metrics::MetricsSpec;
use crate::sidecar::Follower;
use crate::workload::sidecar::shared_folder;

/// How often a trial's file is read.
const POLL: Duration = Duration::from_millis(200);

/// The trial's own copy of the metrics path: `(path given to the trainer, folder to create)`;
/// `None` for sources that are not files.
pub fn local_path(workdir: &Path, trial: &str, spec: &MetricsSpec) -> Option<(PathBuf, PathBuf)> {
    let (folder, followed) = shared_folder(spec)?;
    let root = workdir.join(".lopper").join(trial);
    let map = |p: &str| root.join(p.trim_start_matches('/'));
    Some((map(&followed), map(&folder)))
}

/// Makes the trial's folder afresh (files of an earlier run of the same trial name would be
/// read as this trial's) and returns the path to give the trainer.
pub fn prepare(
    workdir: &Path,
    trial: &str,
    spec: &MetricsSpec,
) -> std::io::Result<Option<PathBuf>> {
    let Some((path, folder)) = local_path(workdir, trial, spec) else {
        return Ok(None);
    };
    let root = workdir.join(".lopper").join(trial);
    match std::fs::remove_dir_all(&root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(&folder)?;
    Ok(Some(path))
}

/// A running follower: stop it to read the file a last time.
pub struct Following {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Following {
    /// Follows `follower` for trial `idx`, sending its points as reports.
    pub fn start(mut follower: Follower, idx: usize, tx: mpsc::UnboundedSender<Event>) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let send = |points: Vec<(i64, f64)>| {
                for (step, value) in points {
                    let _ = tx.send(Event::Report { idx, step, value });
                }
            };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => send(follower.poll().points),
                    _ = &mut stopped => break,
                }
            }
            send(follower.finish().points);
        });
        Following { stop, task }
    }

    /// The trainer ended: reports its last records (before the loop hears of its exit).
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
