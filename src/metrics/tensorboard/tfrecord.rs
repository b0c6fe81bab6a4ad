//! TFRecord framing, as TensorBoard event files use it:
//!
//! ```text
//! u64 length (little-endian) | u32 masked CRC-32C of the 8 length bytes | data | u32 masked CRC-32C of data
//! ```
//!
//! [`next_frame`] reads one record at an offset of a growing buffer: a record not yet fully
//! written is [`Frame::Incomplete`] (wait for more bytes), a bad checksum is
//! [`Frame::Corrupt`] with where to go on from, so one bad record never stops the reader.

/// Bytes of a record around its data: length, length CRC, data CRC.
pub const OVERHEAD: usize = 8 + 4 + 4;

/// Records longer than this are taken as a corrupt length (TensorBoard scalars are tiny; the
/// largest events, graphs and images, stay well below).
pub const MAX_RECORD: u64 = 256 << 20;

/// One read at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole record: its data is `buf[data.clone()]`, the next record starts at `next`.
    Record {
        data: std::ops::Range<usize>,
        next: usize,
    },
    /// Not enough bytes yet for the record at this offset (a writer mid-flush, or a file cut
    /// short when nothing more comes).
    Incomplete,
    /// A bad record at this offset; go on at `resume`.
    Corrupt { why: String, resume: usize },
}

/// Reads the record at `offset` of `buf`.
pub fn next_frame(buf: &[u8], offset: usize) -> Frame {
    let rest = &buf[offset.min(buf.len())..];
    if rest.len() < 12 {
        return Frame::Incomplete;
    }
    let len_bytes: [u8; 8] = rest[..8].try_into().unwrap_or_default();
    let len_crc = u32::from_le_bytes(rest[8..12].try_into().unwrap_or_default());
    if masked_crc32c(&len_bytes) != len_crc {
        // The length cannot be trusted, so neither can where the next record starts: look for
        // the next offset whose length checksum holds.
        return Frame::Corrupt {
            why: "length checksum mismatch".into(),
            resume: resync(buf, offset + 1),
        };
    }
    let len = u64::from_le_bytes(len_bytes);
    if len > MAX_RECORD {
        return Frame::Corrupt {
            why: format!("record length {len} is implausible"),
            resume: resync(buf, offset + 1),
        };
    }
    let len = len as usize;
    if rest.len() < OVERHEAD + len {
        return Frame::Incomplete;
    }
    let data = offset + 12..offset + 12 + len;
    let data_crc = u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap_or_default());
    let next = offset + OVERHEAD + len;
    if masked_crc32c(&buf[data.clone()]) != data_crc {
        // The length was good: only this record is lost.
        return Frame::Corrupt {
            why: "data checksum mismatch".into(),
            resume: next,
        };
    }
    Frame::Record { data, next }
}

/// The first offset at or after `from` where a length with a valid checksum starts (or the
/// end of what is there so far, to look again when more comes).
fn resync(buf: &[u8], from: usize) -> usize {
    let mut at = from;
    while at + 12 <= buf.len() {
        let len_bytes: [u8; 8] = buf[at..at + 8].try_into().unwrap_or_default();
        let crc = u32::from_le_bytes(buf[at + 8..at + 12].try_into().unwrap_or_default());
        if masked_crc32c(&len_bytes) == crc && u64::from_le_bytes(len_bytes) <= MAX_RECORD {
            return at;
        }
        at += 1;
    }
    // Keep the last 11 bytes: a valid header may start there once more bytes come.
    at.max(from)
}

/// Frames `data` as one record (what a writer appends; used by tests).
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(OVERHEAD + data.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant, so that a CRC of data
/// that itself contains CRCs stays well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78). Table-driven: event files are
/// small and read once, so no hardware path is needed (and no dependency for 20 lines).
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::LazyLock<[u32; 256]> = std::sync::LazyLock::new(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82f6_3b78
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // The standard check value of CRC-32C, and RFC 3720's 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn frames_incomplete_and_corrupt() {
        let mut buf = frame(b"hello");
        buf.extend(frame(b"world!"));
        let Frame::Record { data, next } = next_frame(&buf, 0) else {
            panic!()
        };
        assert_eq!(&buf[data], b"hello");
        let Frame::Record { data, next: end } = next_frame(&buf, next) else {
            panic!()
        };
        assert_eq!((&buf[data], end), (&b"world!"[..], buf.len()));
        assert_eq!(next_frame(&buf, end), Frame::Incomplete);
        // Cut anywhere inside the second record: incomplete, never an error.
        for cut in next..buf.len() {
            assert_eq!(
                next_frame(&buf[..cut], next),
                Frame::Incomplete,
                "cut {cut}"
            );
        }
        // A flipped data byte loses that record only.
        let mut bad = buf.clone();
        bad[13] ^= 1;
        assert_eq!(
            next_frame(&bad, 0),
            Frame::Corrupt {
                why: "data checksum mismatch".into(),
                resume: next
            }
        );
        // A flipped length byte: resynchronised at the next record.
        let mut bad = buf.clone();
        bad[0] ^= 0x40;
        match next_frame(&bad, 0) {
            Frame::Corrupt { resume, why } => {
                assert_eq!(resume, next, "{why}");
            }
            f => panic!("{f:?}"),
        }
    }
}
