//! The partition directory on disk, defined once: which files it holds, how
//! they are named, how its small files are encoded, and how they are
//! replaced. Recovery reads what the log writes, so both take the format
//! from here (the `.log` batches are Kafka's v2 format, `batch.rs`; the
//! index entries are in `segment_index.rs`).
//!
//! A partition directory (`topic-N/`) holds:
//! - per segment, named by its base offset in 20 digits:
//!   `NNNNNNNNNNNNNNNNNNNN.log` (whole batches), `.index` and `.timeindex`;
//! - [`CHECKPOINT_FILE`]: an offset below which every segment is finalized
//!   with its indexes on disk ([`encode_checkpoint`]);
//! - [`SNAPSHOT_FILE`]: the idempotent-producer state as of an offset
//!   ([`encode_producer_snapshot`]);
//! - [`CLEAN_SHUTDOWN_FILE`]: written last by a clean close, removed by
//!   open; while it is there the segments need no scan;
//! - [`LEADER_EPOCH_FILE`]: the leader-epoch cache in Kafka's text format
//!   ([`encode_leader_epochs`]);
//! - [`PENDING_TRUNCATION_FILE`]: a truncation asked of a closed log, done
//!   by the next open ([`encode_truncation`]); present only between the
//!   two;
//! - transiently, `*.tmp`: a small file being replaced, removed by open.

use crate::constants::PRODUCER_BATCHES_KEPT;
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::producer_state::{BatchMeta, ProducerEntry, ProducerState};
use crate::segment_appender::align_up;
use crate::storage::{IoBuf, Storage, StorageFile};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";

pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// The marker's content: only its presence counts.
pub(crate) const CLEAN_SHUTDOWN_MARKER: &[u8] = b"";
pub(crate) const CHECKPOINT_FILE: &str = "recovery-point";
pub(crate) const SNAPSHOT_FILE: &str = "producer.snapshot";
/// Kafka's name, so that its tools recognise it.
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
pub(crate) const PENDING_TRUNCATION_FILE: &str = "pending-truncation";

/// Extension of the temporary file a small file is replaced through.
const TMP_EXTENSION: &str = "tmp";

pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// Base offset of a `.log` file name, if it is one.
pub(crate) fn parse_log_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A temporary file left by a replacement that did not finish.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.strip_suffix(TMP_EXTENSION)
        .is_some_and(|s| s.ends_with('.'))
}

/// Checkpoint format: offset i64, CRC-32C of it (u32). Big-endian.
pub(crate) fn encode_checkpoint(offset: i64) -> Vec<u8> {
    let mut b = offset.to_be_bytes().to_vec();
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// The checkpoint's offset; `None` if damaged.
pub(crate) fn decode_checkpoint(b: &[u8]) -> Option<i64> {
    if b.len() != 12 {
        return None;
    }
    let off = i64::from_be_bytes(b[..8].try_into().ok()?);
    let crc = u32::from_be_bytes(b[8..].try_into().ok()?);
    (crc32c::crc32c(&b[..8]) == crc).then_some(off)
}

/// Version of Kafka's leader-epoch checkpoint format.
const LEADER_EPOCH_FORMAT_VERSION: u32 = 0;

/// Kafka's `leader-epoch-checkpoint` text format: a version line (`0`), a
/// count line, then one `epoch startOffset` line per entry.
pub(crate) fn encode_leader_epochs(cache: &LeaderEpochCache) -> Vec<u8> {
    let mut s = format!("{LEADER_EPOCH_FORMAT_VERSION}\n{}\n", cache.entries().len());
    for e in cache.entries() {
        s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    s.into_bytes()
}

/// Decodes a leader-epoch checkpoint; `None` if it is not one (a wrong
/// version or count, a malformed line, entries out of order).
pub(crate) fn decode_leader_epochs(b: &[u8]) -> Option<LeaderEpochCache> {
    let text = std::str::from_utf8(b).ok()?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next()?.parse::<u32>().ok()? != LEADER_EPOCH_FORMAT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut entries = Vec::new();
    for line in lines {
        let mut f = line.split_whitespace();
        let epoch = f.next()?.parse().ok()?;
        let start_offset = f.next()?.parse().ok()?;
        if f.next().is_some() || entries.len() == count {
            return None;
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    if entries.len() != count {
        return None;
    }
    LeaderEpochCache::from_entries(entries)
}

/// What a closed log is asked to remove, done by its next open (the open
/// that finds [`PENDING_TRUNCATION_FILE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Remove the batch holding this offset and every later one (a
    /// follower whose log diverged from its leader's). If the log starts
    /// after it, everything goes and the log starts again at this offset.
    To(i64),
    /// Remove everything; the log starts again at this offset (a follower
    /// whose leader's log starts past its end).
    Reset(i64),
}

impl Truncation {
    pub fn offset(self) -> i64 {
        match self {
            Truncation::To(o) | Truncation::Reset(o) => o,
        }
    }
}

/// Pending truncation format: kind u8 (0 to, 1 reset), offset i64, CRC-32C
/// of both (u32). Big-endian.
pub(crate) fn encode_truncation(t: Truncation) -> Vec<u8> {
    let kind = match t {
        Truncation::To(_) => 0u8,
        Truncation::Reset(_) => 1,
    };
    let mut b = vec![kind];
    b.extend_from_slice(&t.offset().to_be_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// The pending truncation; `None` if damaged.
pub(crate) fn decode_truncation(b: &[u8]) -> Option<Truncation> {
    if b.len() != 13 || crc32c::crc32c(&b[..9]) != u32::from_be_bytes(b[9..].try_into().ok()?) {
        return None;
    }
    let offset = i64::from_be_bytes(b[1..9].try_into().ok()?);
    match (b[0], offset >= 0) {
        (0, true) => Some(Truncation::To(offset)),
        (1, true) => Some(Truncation::Reset(offset)),
        _ => None,
    }
}

/// Snapshot format: offset i64, count u32, then per producer: id i64,
/// epoch i16, n u8, n x (first_seq i32, last_seq i32, base i64, last i64);
/// then CRC-32C of all of it (u32). Big-endian.
pub(crate) fn encode_producer_snapshot(state: &ProducerState, offset: i64) -> Vec<u8> {
    let producers = state.producers();
    let mut b = Vec::new();
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&(producers.len() as u32).to_be_bytes());
    let mut pids: Vec<_> = producers.keys().copied().collect();
    pids.sort_unstable();
    for pid in pids {
        let e = &producers[&pid];
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&e.epoch.to_be_bytes());
        b.push(e.batches.len() as u8);
        for m in &e.batches {
            b.extend_from_slice(&m.first_seq.to_be_bytes());
            b.extend_from_slice(&m.last_seq.to_be_bytes());
            b.extend_from_slice(&m.base_offset.to_be_bytes());
            b.extend_from_slice(&m.last_offset.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

/// Decodes a snapshot: (offset it covers up to, state). `None` if damaged.
pub(crate) fn decode_producer_snapshot(bytes: &[u8]) -> Option<(i64, ProducerState)> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut r = Reader(body);
    let offset = r.i64()?;
    let n = r.u32()?;
    let mut producers = HashMap::new();
    for _ in 0..n {
        let pid = r.i64()?;
        let epoch = r.i16()?;
        let k = r.u8()? as usize;
        if k > PRODUCER_BATCHES_KEPT {
            return None;
        }
        let mut e = ProducerEntry {
            epoch,
            ..Default::default()
        };
        for _ in 0..k {
            let m = BatchMeta {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: r.i64()?,
                last_offset: r.i64()?,
            };
            e.last_offset = m.last_offset;
            e.batches.push_back(m);
        }
        producers.insert(pid, e);
    }
    r.0.is_empty()
        .then(|| (offset, ProducerState::from_producers(producers)))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.0.len() < N {
            return None;
        }
        let (a, rest) = self.0.split_at(N);
        self.0 = rest;
        a.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|a| a[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Writes `bytes` as the whole content of `path` and fdatasyncs it.
pub(crate) async fn write_file<S: Storage>(
    storage: &S,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let f = storage.open(path, true).await?;
    f.truncate(0).await?;
    if !bytes.is_empty() {
        let mut buf = storage.alloc_buf(align_up(bytes.len() as u64) as usize);
        let s = buf.as_mut_slice();
        s[..bytes.len()].copy_from_slice(bytes);
        s[bytes.len()..].fill(0);
        f.write_at(Rc::new(buf), 0).await?;
        f.truncate(bytes.len() as u64).await?;
    }
    f.fdatasync().await
}

/// Replaces `path` atomically: temp file, fdatasync, rename, directory sync.
pub(crate) async fn write_file_atomic<S: Storage>(
    storage: &S,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let tmp = path.with_extension(TMP_EXTENSION);
    write_file(storage, &tmp, bytes).await?;
    storage.rename(&tmp, path).await?;
    storage.sync_dir(dir).await
}

/// Whole content of a small file, `None` if absent.
pub(crate) async fn read_file<S: Storage>(storage: &S, path: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match storage.open(path, false).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = f.size().await?;
    let b = f.read_at(0, size as usize).await?;
    Ok(Some(b.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = segment_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_log_name("0000000000000000004x.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
    }

    #[test]
    fn temp_names_are_the_replacements() {
        for f in [
            CHECKPOINT_FILE,
            SNAPSHOT_FILE,
            LEADER_EPOCH_FILE,
            PENDING_TRUNCATION_FILE,
        ] {
            let tmp = Path::new("/d").join(f).with_extension(TMP_EXTENSION);
            let name = tmp.file_name().and_then(|n| n.to_str()).unwrap_or("");
            assert!(is_temp_name(name), "{name}");
        }
        assert!(!is_temp_name(CHECKPOINT_FILE));
        assert!(!is_temp_name("00000000000000000042.log"));
    }

    #[test]
    fn checkpoint_round_trips_and_detects_damage() {
        let b = encode_checkpoint(1234);
        assert_eq!(decode_checkpoint(&b), Some(1234));
        let mut bad = b.clone();
        bad[7] ^= 1;
        assert_eq!(decode_checkpoint(&bad), None);
        assert_eq!(decode_checkpoint(&b[..11]), None);
    }

    #[test]
    fn leader_epochs_round_trip_in_kafkas_format() {
        let mut c = LeaderEpochCache::default();
        c.assign(0, 0);
        c.assign(3, 150);
        let b = encode_leader_epochs(&c);
        assert_eq!(b, b"0\n2\n0 0\n3 150\n");
        assert_eq!(decode_leader_epochs(&b), Some(c));
        let empty = encode_leader_epochs(&LeaderEpochCache::default());
        assert_eq!(empty, b"0\n0\n");
        assert_eq!(
            decode_leader_epochs(&empty),
            Some(LeaderEpochCache::default())
        );
        // Kafka's reader splits on any white space.
        assert!(decode_leader_epochs(b"0\r\n1\r\n2   7\r\n").is_some());
        for bad in [
            &b"1\n0\n"[..],
            b"0\n2\n0 0\n",
            b"0\n1\n0 0\n1 5\n",
            b"0\n1\n0\n",
            b"0\n1\n0 0 0\n",
            b"0\n2\n3 0\n1 5\n",
            b"0\n1\nx 0\n",
            b"",
            b"\xff",
        ] {
            assert_eq!(decode_leader_epochs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pending_truncation_round_trips_and_detects_damage() {
        for t in [Truncation::To(0), Truncation::To(77), Truncation::Reset(9)] {
            assert_eq!(decode_truncation(&encode_truncation(t)), Some(t));
        }
        let mut bad = encode_truncation(Truncation::To(5));
        bad[4] ^= 1;
        assert_eq!(decode_truncation(&bad), None);
        assert_eq!(decode_truncation(&bad[..12]), None);
        let mut neg = vec![0u8];
        neg.extend_from_slice(&(-1i64).to_be_bytes());
        let crc = crc32c::crc32c(&neg);
        neg.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(decode_truncation(&neg), None);
    }
}
