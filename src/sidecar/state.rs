//! What a sidecar has posted, kept on a volume that outlives its container (an `emptyDir` of
//! the pod), so that a restarted sidecar posts no record twice and does not start again after
//! its trial was pruned.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The persisted state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The last step the endpoint answered for (recorded, or refused for good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<i64>,
    /// Set once the trial is pruned or finished: nothing more is posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

/// Why a sidecar stopped posting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stopped {
    Pruned,
    Finished,
}

/// Where the state lives (none: kept in memory only).
#[derive(Debug, Clone)]
pub struct StateFile(Option<PathBuf>);

#[derive(Debug, thiserror::Error)]
#[error("sidecar state {path}: {source}")]
pub struct StateError {
    path: String,
    source: std::io::Error,
}

impl StateFile {
    pub fn new(path: Option<PathBuf>) -> Self {
        StateFile(path)
    }

    /// The saved state; a missing file is a fresh start, an unreadable one too (logged): the
    /// endpoint ignores steps it has, so the worst case is a repeated post, never a lost one.
    pub fn load(&self) -> State {
        let Some(p) = &self.0 else {
            return State::default();
        };
        match std::fs::read(p) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(path = %p.display(), error = %e, "sidecar state unreadable; starting afresh");
                State::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "sidecar state unreadable; starting afresh");
                State::default()
            }
        }
    }

    /// Saves `state` atomically (a temporary file renamed over the old one).
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let Some(p) = &self.0 else { return Ok(()) };
        let err = |source| StateError {
            path: p.display().to_string(),
            source,
        };
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = tmp_path(p);
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        std::fs::write(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, p).map_err(err)
    }
}

fn tmp_path(p: &Path) -> PathBuf {
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    p.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(Some(dir.path().join("s/state.json")));
        assert_eq!(f.load(), State::default());
        let s = State {
            last_step: Some(4),
            stopped: Some(Stopped::Pruned),
        };
        f.save(&s).unwrap();
        assert_eq!(f.load(), s);
        std::fs::write(dir.path().join("s/state.json"), "garbage").unwrap();
        assert_eq!(f.load(), State::default());
    }
}
