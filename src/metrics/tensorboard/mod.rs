//! TensorBoard event files, parsed in Rust: [`tfrecord`] framing and [`event`] messages.
//!
//! [`EventStream`] takes the bytes of one event file as they are appended and returns the
//! objective's scalars; a corrupt record is reported (file and offset) and skipped, a record
//! still being written waits for its remaining bytes.

pub mod event;
pub mod tfrecord;

use tfrecord::Frame;

/// A record that could not be read (it is skipped).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: bad record at offset {offset}: {why} (skipped)")]
pub struct RecordError {
    pub file: String,
    pub offset: u64,
    pub why: String,
}

/// What one push of bytes gave.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    /// `(step, value)` of the tag, in file order.
    pub points: Vec<(i64, f64)>,
    pub errors: Vec<RecordError>,
}

/// The reader of one event file, fed its bytes in order (any chunking).
#[derive(Debug, Clone)]
pub struct EventStream {
    file: String,
    tag: String,
    /// Bytes not consumed yet; `buf[0]` is at file offset `base`.
    buf: Vec<u8>,
    base: u64,
}

impl EventStream {
    /// A reader of `file` (named in errors) for the scalar `tag`.
    pub fn new(file: impl Into<String>, tag: impl Into<String>) -> Self {
        EventStream {
            file: file.into(),
            tag: tag.into(),
            buf: Vec::new(),
            base: 0,
        }
    }

    /// The file was replaced or truncated: start again at offset 0.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.base = 0;
    }

    /// Appends `bytes` and reads every whole record.
    pub fn push(&mut self, bytes: &[u8]) -> Parsed {
        self.buf.extend_from_slice(bytes);
        let mut out = Parsed::default();
        let mut pos = 0;
        loop {
            match tfrecord::next_frame(&self.buf, pos) {
                Frame::Incomplete => break,
                Frame::Corrupt { why, resume } => {
                    out.errors.push(self.error(pos, why));
                    pos = resume;
                }
                Frame::Record { data, next } => {
                    match event::scalar(&self.buf[data], &self.tag) {
                        Ok(Some(p)) => out.points.push(p),
                        Ok(None) => {}
                        Err(e) => out
                            .errors
                            .push(self.error(pos, format!("not a TensorBoard event: {e}"))),
                    }
                    pos = next;
                }
            }
        }
        self.buf.drain(..pos.min(self.buf.len()));
        self.base += pos as u64;
        out
    }

    /// Nothing more will come: bytes left over are a truncated record.
    pub fn finish(&mut self) -> Option<RecordError> {
        if self.buf.is_empty() {
            return None;
        }
        let e = self.error(
            0,
            format!(
                "truncated record ({} bytes at the end of the file)",
                self.buf.len()
            ),
        );
        self.base += self.buf.len() as u64;
        self.buf.clear();
        Some(e)
    }

    fn error(&self, pos: usize, why: String) -> RecordError {
        RecordError {
            file: self.file.clone(),
            offset: self.base + pos as u64,
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::event::simple_scalar_event;
    use super::tfrecord::frame;
    use super::*;

    #[test]
    fn byte_by_byte_corrupt_and_truncated() {
        let mut file = Vec::new();
        let mut starts = Vec::new();
        for s in 0..5 {
            starts.push(file.len());
            file.extend(frame(&simple_scalar_event(s, "loss", s as f32 / 2.0)));
        }
        // Fed one byte at a time: the same points as all at once.
        let mut r = EventStream::new("events.out.tfevents.1", "loss");
        let mut points = Vec::new();
        for b in &file {
            let p = r.push(std::slice::from_ref(b));
            assert!(p.errors.is_empty());
            points.extend(p.points);
        }
        assert_eq!(
            points,
            (0..5).map(|s| (s, s as f64 / 2.0)).collect::<Vec<_>>()
        );
        assert_eq!(r.finish(), None);

        // Record 2's data damaged and the file cut inside record 4.
        let mut bad = file.clone();
        bad[starts[2] + 14] ^= 0xff;
        bad.truncate(starts[4] + 5);
        let mut r = EventStream::new("ev", "loss");
        let p = r.push(&bad);
        assert_eq!(p.points, vec![(0, 0.0), (1, 0.5), (3, 1.5)]);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].offset, starts[2] as u64);
        assert!(
            p.errors[0].to_string().contains("ev: bad record at offset"),
            "{}",
            p.errors[0]
        );
        let e = r.finish().expect("truncated");
        assert_eq!(e.offset, starts[4] as u64);
        assert!(e.why.contains("truncated"), "{e}");
    }
}
