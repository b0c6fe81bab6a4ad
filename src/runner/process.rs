//! A trial as a local process group: spawned with `setsid` so the trial and everything it
//! starts share one process group (the terminal's Ctrl-C does not reach it: `lopper run`
//! decides), stopped with SIGTERM to the group and SIGKILL after a grace period, and the
//! group killed outright once the trial's main process has exited, so nothing is left behind.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use crate::metrics::LineBuffer;
use tokio::process::{Child, Command};

/// Lines of stderr kept for a failed trial's record.
pub const STDERR_TAIL_LINES: usize = 20;
/// Longest line kept in the stderr tail (longer ones are cut).
const MAX_TAIL_LINE: usize = 1_000;
/// Longest stderr line read.
const MAX_LINE: usize = 1 << 20;

/// What to run for one trial.
#[derive(Clone, Debug)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: std::path::PathBuf,
}

/// How a trial's process ended.
#[derive(Clone, Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stderr_tail: String,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => match Signal::try_from(s) {
                Ok(sig) => format!("killed by {sig}"),
                Err(_) => format!("killed by signal {s}"),
            },
            _ => "unknown exit".into(),
        }
    }
}

/// Spawns the trial in a new session (its own process group), stdin closed.
pub fn spawn(launch: &Launch) -> std::io::Result<(Child, Pid)> {
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: between fork and exec only async-signal-safe calls are made (setsid, prctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // If `lopper run` itself dies abruptly, the trial's leader gets SIGKILL.
            #[cfg(target_os = "linux")]
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot start {:?} in {}: {e}",
                launch.program,
                display(&launch.workdir)
            ),
        )
    })?;
    let pid = Pid::from_raw(child.id().map(|p| p as i32).unwrap_or(0));
    Ok((child, pid))
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Sends `sig` to the process group; false when the group no longer exists.
pub fn signal_group(pgid: Pid, sig: Option<Signal>) -> bool {
    if pgid.as_raw() <= 1 {
        return false;
    }
    !matches!(killpg(pgid, sig), Err(Errno::ESRCH))
}

/// Whether any process of the group is still alive.
pub fn group_alive(pgid: Pid) -> bool {
    signal_group(pgid, None)
}

/// SIGTERM to the group now, SIGKILL after `grace` if any member is still there.
pub fn terminate(pgid: Pid, grace: Duration) {
    if !signal_group(pgid, Some(Signal::SIGTERM)) {
        return;
    }
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !group_alive(pgid) {
                return;
            }
        }
        signal_group(pgid, Some(Signal::SIGKILL));
    });
}

/// Runs the trial to its end: every stdout line goes to `on_line` (in order), the stderr
/// tail is kept, and when the main process has exited the rest of its group is killed.
pub async fn supervise(
    mut child: Child,
    pgid: Pid,
    mut on_line: impl FnMut(String) + Send,
) -> Exit {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        match stderr {
            Some(s) => tail(s).await,
            None => String::new(),
        }
    });
    let mut out = stdout;
    let mut lines = LineBuffer::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut status = None;
    // Read stdout until EOF, or until the main process exits (a leftover grandchild may
    // keep the pipe open: it is killed below and the pipe drained).
    if let Some(reader) = out.as_mut() {
        loop {
            tokio::select! {
                n = reader.read(&mut chunk) => {
                    let n = n.unwrap_or(0);
                    if n == 0 { break; }
                    lines.push(&chunk[..n]).into_iter().for_each(&mut on_line);
                }
                s = child.wait() => {
                    status = Some(s);
                    break;
                }
            }
        }
    }
    let status = match status {
        Some(s) => s,
        None => child.wait().await,
    };
    signal_group(pgid, Some(Signal::SIGKILL));
    if let Some(reader) = out.as_mut() {
        let drain = async {
            loop {
                let n = reader.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                lines.push(&chunk[..n]).into_iter().for_each(&mut on_line);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
    if let Some(last) = lines.finish() {
        on_line(last);
    }
    let stderr_tail = tokio::time::timeout(Duration::from_secs(2), err_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => Exit {
            code: s.code(),
            signal: s.signal(),
            stderr_tail,
        },
        Err(e) => Exit {
            code: None,
            signal: None,
            stderr_tail: format!("{stderr_tail}\nwaiting for the trial failed: {e}"),
        },
    }
}

/// Reads one line (without its end) into `buf`, at most [`MAX_LINE`] bytes of it kept;
/// returns 0 at EOF.
async fn read_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, buf: &mut Vec<u8>) -> usize {
    buf.clear();
    let mut total = 0;
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(c) => c,
            Err(_) => return total,
        };
        if chunk.is_empty() {
            return total;
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(take);
        total += take;
        if done {
            return total;
        }
    }
}

async fn tail<R: AsyncRead + Unpin>(r: R) -> String {
    let mut reader = BufReader::new(r);
    let mut lines: VecDeque<String> = VecDeque::new();
    let mut buf = Vec::new();
    while read_line(&mut reader, &mut buf).await > 0 {
        let mut line = String::from_utf8_lossy(&buf).trim_end().to_string();
        if line.len() > MAX_TAIL_LINE {
            let mut cut = MAX_TAIL_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
    Vec::from(lines).join("\n")
}
