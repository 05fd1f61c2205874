//! The usage journal: every finished request's log row, with the usage it settled, is
//! appended here (one `write(2)`, into the page cache) before the request is
//! acknowledged, so what was billed survives a crash of the gateway process. The log
//! writer moves rows from the journal into SQLite in batches and records, in the same
//! transaction, how far it got; at start-up whatever lies beyond that mark is written
//! first. Segments the writer has consumed are deleted.
//!
//! A record is `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`; a
//! torn or corrupt record ends its segment (only a crash mid-write leaves one, and that
//! request was never acknowledged). An empty payload is a probe and carries nothing.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a record sits: (segment number, byte offset in it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pos {
    /// Segment file number; later segments hold later records.
    pub segment: u64,
    /// Byte offset of the record's header in its segment.
    pub offset: u64,
}

/// Bytes of a record's header.
pub const HEADER: u64 = 8;
/// Largest payload accepted when reading (a length beyond it marks corruption).
const MAX_PAYLOAD: u32 = 64 << 20;
/// A segment is closed and a new one started once it passes this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The journal of one data directory, open for appending.
pub struct Journal {
    dir: PathBuf,
    active: Mutex<Active>,
    healthy: AtomicBool,
}

struct Active {
    file: File,
    segment: u64,
    offset: u64,
    /// A write failed: the next record starts a new segment (the current one may end
    /// in a partial record, after which nothing may be written).
    rotate: bool,
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016}.journal"))
}

/// The segment numbers present in `dir`, ascending.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let name = e?.file_name();
                let name = name.to_string_lossy();
                if let Some(n) = name.strip_suffix(".journal").and_then(|n| n.parse().ok()) {
                    out.push(n);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort_unstable();
    Ok(out)
}

impl Journal {
    /// Opens `dir` for appending, in a new segment after any already there and after
    /// segment `after` (the store's mark: numbers never go back, even if the directory
    /// was emptied). Older segments are left for [`read_range`] and
    /// [`Journal::delete_before`].
    pub fn open(dir: &Path, after: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().copied().unwrap_or(0).max(after) + 1;
        let file = create_segment(dir, next)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            active: Mutex::new(Active {
                file,
                segment: next,
                offset: 0,
                rotate: false,
            }),
            healthy: AtomicBool::new(true),
        })
    }

    /// Where the next record will be appended.
    pub fn end(&self) -> Pos {
        let a = crate::sync::lock(&self.active);
        Pos {
            segment: a.segment,
            offset: a.offset,
        }
    }

    /// Whether the last append worked (the gateway refuses new requests while not).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Appends one record and, still holding the journal's lock so that whatever
    /// `then` queues is in journal order, calls `then` with the record's start and end.
    /// On failure the journal is marked unhealthy and the segment, which may end in
    /// part of the record, takes nothing more (the next record starts a new one).
    pub fn append<T>(&self, payload: &[u8], then: impl FnOnce(Pos, Pos) -> T) -> io::Result<T> {
        let mut framed = Vec::with_capacity(payload.len() + HEADER as usize);
        framed.extend_from_slice(&[0; HEADER as usize]);
        framed.extend_from_slice(payload);
        self.append_framed(&mut framed, then)
    }

    /// [`Journal::append`] for a payload placed after [`HEADER`] bytes of room, which
    /// are overwritten with the header: the record is written from the buffer it was
    /// encoded into, with no copy. A buffer shorter than the header is refused.
    pub fn append_framed<T>(
        &self,
        framed: &mut [u8],
        then: impl FnOnce(Pos, Pos) -> T,
    ) -> io::Result<T> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why);
        let (header, payload) = framed
            .split_at_mut_checked(HEADER as usize)
            .ok_or_else(|| invalid("journal record without room for its header"))?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_PAYLOAD)
            .ok_or_else(|| invalid("journal record too large"))?;
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        let buf = &*framed;
        let mut a = crate::sync::lock(&self.active);
        if a.rotate || a.offset >= SEGMENT_BYTES {
            match create_segment(&self.dir, a.segment + 1) {
                Ok(file) => {
                    a.file = file;
                    a.segment += 1;
                    a.offset = 0;
                    a.rotate = false;
                }
                Err(e) if a.rotate => {
                    self.healthy.store(false, Ordering::Relaxed);
                    return Err(e);
                }
                // Only full: this segment simply grows past its size.
                Err(_) => {}
            }
        }
        let start = Pos {
            segment: a.segment,
            offset: a.offset,
        };
        if let Err(e) = a.file.write_all(buf) {
            // Part of the record may be on disk: this segment takes nothing more.
            a.rotate = true;
            self.healthy.store(false, Ordering::Relaxed);
            return Err(e);
        }
        a.offset += buf.len() as u64;
        let end = Pos {
            segment: a.segment,
            offset: a.offset,
        };
        let out = then(start, end);
        self.healthy.store(true, Ordering::Relaxed);
        Ok(out)
    }

    /// Tries an empty record: the journal is healthy again once one goes through.
    pub fn probe(&self) -> bool {
        self.append(&[], |_, _| ()).is_ok()
    }

    /// Deletes every segment before `pos`'s (their records are all in the store).
    pub fn delete_before(&self, pos: Pos) {
        let Ok(all) = segments(&self.dir) else { return };
        for s in all.into_iter().filter(|&s| s < pos.segment) {
            let _ = std::fs::remove_file(segment_path(&self.dir, s));
        }
    }

    /// The directory the segments live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn create_segment(dir: &Path, segment: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, segment))
}

/// At most `max` records of `dir` in `[from, to)` (`to = None`: to the end), with where
/// each ends. Reading stops at the first torn or corrupt record of a segment (and moves
/// on to the next segment).
pub fn read_range(
    dir: &Path,
    from: Pos,
    to: Option<Pos>,
    max: usize,
) -> io::Result<Vec<(Pos, Vec<u8>)>> {
    let mut out = Vec::new();
    let before_end = |p: Pos| to.is_none_or(|t| p < t);
    for seg in segments(dir)?.into_iter().filter(|&s| s >= from.segment) {
        if to.is_some_and(|t| seg > t.segment) {
            break;
        }
        let file = match File::open(segment_path(dir, seg)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut offset = if seg == from.segment { from.offset } else { 0 };
        let mut r = BufReader::new(file);
        r.seek(SeekFrom::Start(offset))?;
        while out.len() < max
            && before_end(Pos {
                segment: seg,
                offset,
            })
        {
            let mut header = [0u8; HEADER as usize];
            if r.read_exact(&mut header).is_err() {
                break;
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len > MAX_PAYLOAD {
                tracing::warn!(
                    segment = seg,
                    offset,
                    "corrupt journal record length; skipping the rest of the segment"
                );
                break;
            }
            let mut payload = vec![0u8; len as usize];
            if r.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
                tracing::warn!(
                    segment = seg,
                    offset,
                    "torn journal record; skipping the rest of the segment"
                );
                break;
            }
            offset += HEADER + u64::from(len);
            out.push((
                Pos {
                    segment: seg,
                    offset,
                },
                payload,
            ));
        }
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tollgate-journal-{name}-{}",
            crate::ids::random_token(8)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_come_back_in_order_and_from_any_position() {
        let dir = tmp("order");
        let j = Journal::open(&dir, 0).expect("open");
        let mut ends = Vec::new();
        for i in 0..5u8 {
            let (start, end) = j.append(&[i; 10], |s, e| (s, e)).expect("append");
            assert!(start < end);
            ends.push(end);
        }
        let all = read_range(&dir, Pos::default(), None, usize::MAX).expect("read");
        assert_eq!(all.len(), 5);
        assert_eq!(all[2].1, vec![2u8; 10]);
        let tail = read_range(&dir, ends[1], Some(ends[3]), usize::MAX).expect("read");
        assert_eq!(tail.iter().map(|r| r.1[0]).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(j.end(), ends[4]);
        let first_two = read_range(&dir, Pos::default(), None, 2).expect("read");
        assert_eq!(first_two.len(), 2);
        assert_eq!(first_two[1].0, ends[1]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_reopening_starts_a_new_segment() {
        let dir = tmp("torn");
        let j = Journal::open(&dir, 0).expect("open");
        let end = j.append(b"whole", |_, e| e).expect("append");
        drop(j);
        // A crash mid-write leaves half a record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(&dir, end.segment))
            .expect("segment");
        f.write_all(&[200, 0, 0, 0, 1, 2]).expect("torn");
        let j = Journal::open(&dir, 0).expect("reopen");
        assert_eq!(j.end().segment, end.segment + 1);
        let got = read_range(&dir, Pos::default(), None, usize::MAX).expect("read");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"whole");
        j.append(b"next", |_, _| ()).expect("append");
        assert_eq!(
            read_range(&dir, Pos::default(), None, usize::MAX)
                .expect("read")
                .len(),
            2
        );
        j.delete_before(j.end());
        assert_eq!(segments(&dir).expect("segments"), vec![end.segment + 1]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
