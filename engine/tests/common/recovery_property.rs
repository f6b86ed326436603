//! The recovery-on-damaged-files property, shared by the seeded test
//! (`engine/tests/recovery_fuzz.rs`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/recovery.rs`, which includes this file by path).
//!
//! A real log is written on the simulated disk (no real I/O, deterministic),
//! its files are damaged as the input says (bytes overwritten, bit flips,
//! truncation, replacement, deletion; in segments, indexes, time indexes,
//! the recovery point, the producer snapshot and the clean-shutdown marker)
//! and the log is opened. It must never panic or hang, and either refuse
//! with a `RecoveryError` or open a log whose reads are consistent:
//! - with the clean-shutdown marker and recovery point removed (the input's
//!   first byte has its top bit set) recovery trusts nothing and scans every
//!   segment: then every read below the high watermark returns whole batches
//!   that pass their CRC, start at the batch holding the offset asked for,
//!   are contiguous and end below the high watermark;
//! - where a marker or checkpoint vouches for damaged files (bit rot after
//!   a clean shutdown, which no engine can tell from good data without
//!   scanning, as reads skip ahead by the index), reads may fail with a
//!   `ReadError` or serve what the files hold, but never panic or hang;
//! - a new batch appends at the log end and reads back byte for byte;
//! - the log closes cleanly and reopens at the same end.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use spindle_engine::batch::{build_test_batch, build_test_batch_idempotent, set_base_offset};
use spindle_engine::storage::sim::SimRng;
use spindle_engine::storage::SimDisk;
use spindle_engine::{
    BatchCache, BatchHeader, FlushMode, LogConfig, PartitionLog, ReadChunk, ReadError, Storage,
};
use std::path::PathBuf;
use std::rc::Rc;

const DIR: &str = "/fuzz/t-0";
/// Small files that may be absent from an image but matter to recovery.
const SMALL_FILES: [&str; 3] = ["recovery-point", "producer.snapshot", ".clean-shutdown"];

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        index_interval_bytes: 256,
        flush: FlushMode::Batch,
        ..LogConfig::default()
    }
}

/// A partition directory's files, as a real log left them.
#[derive(Clone)]
pub struct Image {
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

/// Three images: closed cleanly; dropped (unclean, with checkpoints from
/// rolls); written with flush=never and crashed (torn, lost tail).
pub async fn base_images() -> Vec<Image> {
    let mut out = Vec::new();
    for variant in 0..3u64 {
        let disk = SimDisk::new();
        let dir = PathBuf::from(DIR);
        let mut c = cfg();
        if variant == 2 {
            c.flush = FlushMode::Never;
        }
        let log = PartitionLog::open_with(disk.storage(), dir.clone(), c, BatchCache::new(0))
            .await
            .expect("open a fresh log");
        let mut seq = 0;
        for i in 0..24u32 {
            let count = 1 + (i % 3) as i32;
            let b = if i % 3 == 0 {
                seq += count;
                build_test_batch_idempotent(count, i as i64 * 10, &[i as u8; 90], 5, 0, seq - count)
            } else {
                let payload = vec![i as u8; 50 + (i as usize * 37) % 700];
                build_test_batch(count, i as i64 * 10, &payload)
            };
            log.append(BytesMut::from(&b[..])).await.expect("append");
        }
        if variant == 0 {
            log.close().await.expect("close");
        }
        drop(log);
        if variant == 2 {
            disk.crash(&mut SimRng::new(7));
        }
        let files = disk
            .files()
            .into_iter()
            .filter_map(|p| disk.read_file(&p).map(|b| (p, b)))
            .collect();
        out.push(Image { files });
    }
    out
}

/// One damage to one file.
struct Damage {
    file: usize,
    kind: u8,
    pos: usize,
    data: Vec<u8>,
}

/// Reads the input as: image, read size, then damages of
/// `[file, kind, pos_hi, pos_lo, len, data...]`. Total: any bytes decode.
fn decode(input: &[u8], nfiles: usize) -> (usize, u32, Vec<Damage>) {
    let image = input.first().copied().unwrap_or(0) as usize;
    let max_bytes = match input.get(1).copied().unwrap_or(0) {
        0..=63 => 1,
        64..=127 => 700,
        128..=191 => 5000,
        _ => 1 << 20,
    };
    let mut damages = Vec::new();
    let mut rest = input.get(2..).unwrap_or(&[]);
    while rest.len() >= 5 && damages.len() < 16 {
        let len = (rest[4] as usize % 32).min(rest.len() - 5);
        damages.push(Damage {
            file: rest[0] as usize % nfiles,
            kind: rest[1] % 6,
            pos: u16::from_be_bytes([rest[2], rest[3]]) as usize,
            data: rest[5..5 + len].to_vec(),
        });
        rest = &rest[5 + len..];
    }
    (image, max_bytes, damages)
}

fn damage(bytes: &mut Option<Vec<u8>>, d: &Damage) {
    let b = bytes.get_or_insert_with(Vec::new);
    let at = d.pos % (b.len() + 1);
    match d.kind {
        0 => {
            let end = (at + d.data.len()).min(b.len());
            b[at..end].copy_from_slice(&d.data[..end - at]);
        }
        1 => b.truncate(at),
        2 => *b = d.data.clone(),
        3 => *bytes = None,
        4 => {
            if let Some(x) = b.get_mut(at) {
                *x ^= 1 << (d.pos % 8);
            }
        }
        _ => b.extend_from_slice(&d.data),
    }
}

fn chunk_bytes(c: &ReadChunk) -> Bytes {
    match c {
        ReadChunk::Memory(b) => b.clone(),
        // The simulated disk has no real files: reads come back in memory.
        ReadChunk::File(_) => panic!("file range from the simulated disk"),
    }
}

/// What recovery made of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Refused,
    Opened,
}

/// Runs the property on one input; panics on a violation.
pub async fn check(input: &[u8], images: &[Image]) -> Outcome {
    let image = &images[(input.first().copied().unwrap_or(0) & 0x7f) as usize % images.len()];
    let dir = PathBuf::from(DIR);
    let mut paths: Vec<PathBuf> = image.files.iter().map(|(p, _)| p.clone()).collect();
    for n in SMALL_FILES {
        if !paths.iter().any(|p| p.ends_with(n)) {
            paths.push(dir.join(n));
        }
    }
    let (_, max_bytes, damages) = decode(input, paths.len());
    let mut contents: Vec<Option<Vec<u8>>> = paths
        .iter()
        .map(|p| {
            image
                .files
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, b)| b.clone())
        })
        .collect();
    for d in &damages {
        damage(&mut contents[d.file], d);
    }
    let strict = input.first().is_some_and(|b| b & 0x80 != 0);
    for (p, c) in paths.iter().zip(contents.iter_mut()) {
        if strict && (p.ends_with(SMALL_FILES[0]) || p.ends_with(SMALL_FILES[2])) {
            *c = None;
        }
    }
    let disk = SimDisk::new();
    for (p, b) in paths.iter().zip(&contents) {
        if let Some(b) = b {
            disk.write_file_durable(p, b.clone());
        }
    }
    let trusted = [SMALL_FILES[0], SMALL_FILES[2]]
        .iter()
        .any(|n| disk.read_file(&dir.join(n)).is_some());
    let storage = disk.storage();
    let Ok(log) =
        PartitionLog::open_with(storage.clone(), dir.clone(), cfg(), BatchCache::new(0)).await
    else {
        return Outcome::Refused; // fine, as long as it did not panic or hang
    };
    read_everything(&log, max_bytes, trusted).await;
    let _ = log.offset_for_timestamp(0).await;
    let _ = log.offset_for_timestamp(115).await;
    append_and_read_back(&log).await;
    let end = log.log_end_offset();
    log.close().await.expect("a recovered log closes cleanly");
    drop(log);
    let log = PartitionLog::open_with(storage, dir, cfg(), BatchCache::new(0))
        .await
        .expect("a log closed cleanly reopens");
    assert_eq!(log.log_end_offset(), end, "reopened at a different end");
    read_everything(&log, max_bytes, trusted).await;
    Outcome::Opened
}

async fn read_everything<S: Storage>(log: &Rc<PartitionLog<S>>, max_bytes: u32, trusted: bool) {
    let (lso, hw) = (log.log_start_offset(), log.high_watermark());
    assert!(lso <= hw, "log start {lso} above high watermark {hw}");
    let mut next = lso;
    while next < hw {
        let r = match log.read(next, max_bytes).await {
            Ok(r) => r,
            Err(e @ (ReadError::Corrupt { .. } | ReadError::Io(_))) => {
                assert!(trusted, "read at {next} failed after a full scan: {e}");
                return;
            }
            Err(e) => panic!("read at {next} below hw {hw}: {e}"),
        };
        if trusted && r.chunks.is_empty() {
            return; // damaged files vouched for: nothing more to hold them to
        }
        assert!(
            !r.chunks.is_empty(),
            "empty read at {next} below hw {hw} (log start {lso})"
        );
        let first = next;
        for c in &r.chunks {
            let b = chunk_bytes(c);
            let mut pos = 0usize;
            while pos < b.len() {
                let h = BatchHeader::parse(&b[pos..]);
                let end = h
                    .as_ref()
                    .map_or(usize::MAX, |h| pos + h.total_len() as usize);
                if trusted && end > b.len() {
                    return; // served as the vouched-for files hold it
                }
                let h = h.expect("a served batch parses");
                assert!(end <= b.len(), "batch overruns its chunk");
                assert!(
                    trusted || h.last_offset() < hw,
                    "batch past the high watermark"
                );
                if !trusted {
                    h.validate(&b[pos..end])
                        .expect("a scanned batch passes its CRC");
                }
                if trusted {
                    // Whatever the damaged files say, never loop in place.
                    next = next.max(h.last_offset() + 1);
                    pos = end;
                    continue;
                }
                if next == first {
                    assert!(
                        h.base_offset <= next && h.last_offset() >= next,
                        "read at {next} starts at {}",
                        h.base_offset
                    );
                } else {
                    assert_eq!(h.base_offset, next, "offsets not contiguous");
                }
                next = h.last_offset() + 1;
                pos = end;
            }
        }
        if trusted && next == first {
            return;
        }
        assert!(next > first, "read at {first} did not advance");
    }
}

async fn append_and_read_back<S: Storage>(log: &Rc<PartitionLog<S>>) {
    let end = log.log_end_offset();
    let b = build_test_batch(2, 1_000, b"appended after recovery");
    let info = log
        .append(BytesMut::from(&b[..]))
        .await
        .expect("append to a recovered log");
    assert_eq!(info.base_offset, end, "appended away from the log end");
    let r = log.read(end, 1 << 20).await.expect("read back the append");
    let got = chunk_bytes(r.chunks.first().expect("the appended batch"));
    let mut want = b.clone();
    set_base_offset(&mut want, end);
    assert_eq!(
        &got[..want.len()],
        &want[..],
        "appended batch read back different"
    );
}
