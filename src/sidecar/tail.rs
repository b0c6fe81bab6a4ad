//! Following one file by polling: bytes appended since the last read, and the moments the
//! file was replaced (rotation: a new file at the path) or truncated, after which it is read
//! again from its start. A path with no file yet (or no more) is not an error: the file may
//! appear later.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// At most this many bytes are returned by one [`Tail::read`] (the rest comes next time).
pub const MAX_READ: usize = 8 << 20;

/// What changed at the path since the last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The file was replaced or truncated: what follows starts at its offset 0.
    Reset,
    /// Bytes appended.
    Data(Vec<u8>),
}

/// The follower of one path.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    file: File,
    id: (u64, u64),
    offset: u64,
}

impl Tail {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Tail {
            path: path.into(),
            open: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The changes since the last call, in order. Errors are the file's I/O errors (a missing
    /// file is none).
    pub fn read(&mut self) -> std::io::Result<Vec<Change>> {
        let mut out = Vec::new();
        let mut budget = MAX_READ;
        let now = match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() => Some((m.dev(), m.ino())),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(open) = &mut self.open {
            if now != Some(open.id) {
                // Rotated or removed: what the old file still had comes first.
                read_to_end(open, &mut out, &mut budget)?;
                if now.is_none() {
                    return Ok(out);
                }
                self.open = None;
            } else if open.file.metadata()?.len() < open.offset {
                open.file.seek(SeekFrom::Start(0))?;
                open.offset = 0;
                out.push(Change::Reset);
            }
        }
        if self.open.is_none() {
            let Some(id) = now else { return Ok(out) };
            let file = match File::open(&self.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            let m = file.metadata()?;
            // Between the stat and the open the file may have been replaced once more.
            let id = if (m.dev(), m.ino()) == id {
                id
            } else {
                (m.dev(), m.ino())
            };
            out.push(Change::Reset);
            self.open = Some(Open {
                file,
                id,
                offset: 0,
            });
        }
        if let Some(open) = &mut self.open {
            read_to_end(open, &mut out, &mut budget)?;
        }
        // A leading Reset for a file read for the first time is harmless: parsers start fresh.
        Ok(out)
    }
}

fn read_to_end(open: &mut Open, out: &mut Vec<Change>, budget: &mut usize) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let n = (&mut open.file)
        .take(*budget as u64)
        .read_to_end(&mut buf)?;
    open.offset += n as u64;
    *budget -= n;
    if n > 0 {
        out.push(Change::Data(buf));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data(changes: &[Change]) -> String {
        changes
            .iter()
            .map(|c| match c {
                Change::Reset => "|".to_string(),
                Change::Data(d) => String::from_utf8_lossy(d).into_owned(),
            })
            .collect()
    }

    #[test]
    fn late_file_appends_rotation_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let mut t = Tail::new(&path);
        assert!(t.read().unwrap().is_empty(), "no file yet");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"a\nb").unwrap();
        assert_eq!(data(&t.read().unwrap()), "|a\nb");
        assert!(t.read().unwrap().is_empty());
        f.write_all(b"\nc\n").unwrap();
        assert_eq!(data(&t.read().unwrap()), "\nc\n");
        // Rotation: the old file gets one more line, then a new file takes the path.
        f.write_all(b"d\n").unwrap();
        std::fs::rename(&path, dir.path().join("m.csv.1")).unwrap();
        let mut g = File::create(&path).unwrap();
        g.write_all(b"e\n").unwrap();
        assert_eq!(data(&t.read().unwrap()), "d\n|e\n");
        // Truncation in place.
        g.set_len(0).unwrap();
        let mut g = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        g.write_all(b"f").unwrap();
        assert_eq!(data(&t.read().unwrap()), "|f");
        // Removed: nothing, then a new file.
        std::fs::remove_file(&path).unwrap();
        assert!(t.read().unwrap().is_empty());
        std::fs::write(&path, "g\n").unwrap();
        assert_eq!(data(&t.read().unwrap()), "|g\n");
    }
}
