//! Opening a partition directory: finds segments, trusts what a clean
//! shutdown or a checkpoint vouches for, scans the rest batch by batch with
//! CRC checks, truncates a torn tail, rebuilds missing or stale indexes, the
//! idempotent-producer state and the leader-epoch cache; and carries out a
//! truncation that a closed log was asked for (`PENDING_TRUNCATION_FILE`).
//!
//! Invariants relied on (kept by the appender and the write round):
//! - every segment but the last is whole: it was finalized (truncated,
//!   synced) before the next segment's file was created;
//! - the checkpoint file names an offset below which every segment is
//!   finalized with its indexes on disk;
//! - the producer snapshot records the state as of its offset;
//! - the leader-epoch file holds the epoch of every batch below the
//!   checkpoint (a write round writes it before the data it took), so only
//!   the batches scanned can add to it.
//!
//! A pending truncation is redone from the start by every open until one
//! finishes it, so a crash at any step leaves the old log or the truncated
//! one: segments wholly past it are removed first (newest first, so any
//! part of that which survives leaves a prefix of the log), then the last
//! segment is cut at a batch boundary and synced, then the producer
//! snapshot, checkpoint and epoch file follow, and only then is the
//! request removed, before anything can be appended.

use crate::config::LogConfig;
use crate::constants::{RECOVERY_PROGRESS_BYTES, RECOVERY_READ_BYTES, TAIL_PROBE_BYTES};
use crate::error::RecoveryError;
use crate::layout::{
    decode_checkpoint, decode_leader_epochs, decode_producer_snapshot, decode_truncation,
    encode_checkpoint, encode_leader_epochs, encode_producer_snapshot, is_temp_name,
    parse_log_name, read_file, segment_path, write_file, write_file_atomic, Truncation,
    CHECKPOINT_FILE, CLEAN_SHUTDOWN_FILE, INDEX_SUFFIX, LEADER_EPOCH_FILE, LOG_SUFFIX,
    PENDING_TRUNCATION_FILE, SNAPSHOT_FILE, TIME_INDEX_SUFFIX,
};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::ProducerState;
use crate::segment::{now_ms, ScanEnd, Scanner, Segment, SegmentState};
use crate::segment_appender::{align_down, SegmentAppender};
use crate::segment_index::{OffsetIndex, TimeIndex};
use crate::storage::{Storage, StorageFile};
use std::path::Path;
use std::rc::Rc;

pub(crate) struct Recovered<S: Storage> {
    pub segments: Vec<Rc<Segment<S>>>,
    pub log_start_offset: i64,
    pub next_offset: i64,
    pub producers: ProducerState,
    pub epochs: LeaderEpochCache,
}

struct Progress {
    scanned: u64,
    next_report: u64,
}

impl Progress {
    fn add(&mut self, dir: &Path, bytes: u64) {
        self.scanned += bytes;
        if self.scanned >= self.next_report {
            tracing::info!(dir = %dir.display(), scanned_mib = self.scanned >> 20, "recovery in progress");
            self.next_report += RECOVERY_PROGRESS_BYTES;
        }
    }
}

pub(crate) async fn recover<S: Storage>(
    storage: &S,
    dir: &Path,
    cfg: &LogConfig,
) -> Result<Recovered<S>, RecoveryError> {
    storage
        .create_dir_all(dir)
        .await
        .map_err(RecoveryError::io(dir))?;
    let names = storage
        .list_dir(dir)
        .await
        .map_err(RecoveryError::io(dir))?;
    for n in names.iter().filter(|n| is_temp_name(n)) {
        let p = dir.join(n);
        storage
            .remove_file(&p)
            .await
            .map_err(RecoveryError::io(&p))?;
    }
    let mut bases: Vec<i64> = names.iter().filter_map(|n| parse_log_name(n)).collect();
    bases.sort_unstable();
    let marker = names.iter().any(|n| n == CLEAN_SHUTDOWN_FILE);
    let pending = read_pending_truncation(storage, dir).await?;
    let mut wiped = false;
    if let Some(t) = pending {
        tracing::info!(dir = %dir.display(), truncation = ?t, "carrying out a pending truncation");
        (bases, wiped) = remove_truncated_segments(storage, dir, t, bases, marker).await?;
    }
    // A truncation leaves the last segment to be scanned and cut.
    let clean = marker && pending.is_none();
    let cut = pending.map(Truncation::offset);
    let cp_path = dir.join(CHECKPOINT_FILE);
    let checkpoint = read_file(storage, &cp_path)
        .await
        .map_err(RecoveryError::io(&cp_path))?
        .and_then(|b| decode_checkpoint(&b));
    let snap_path = dir.join(SNAPSHOT_FILE);
    let snapshot = read_file(storage, &snap_path)
        .await
        .map_err(RecoveryError::io(&snap_path))?
        .and_then(|b| decode_producer_snapshot(&b));
    let have_snapshot = snapshot.is_some();
    let ep_path = dir.join(LEADER_EPOCH_FILE);
    let ep_bytes = read_file(storage, &ep_path)
        .await
        .map_err(RecoveryError::io(&ep_path))?;
    let epochs_on_disk = ep_bytes.as_deref().map(decode_leader_epochs);
    // A damaged epoch file (it is replaced atomically, so only the device
    // can damage it) is rebuilt from every batch.
    let rebuild_epochs = matches!(epochs_on_disk, Some(None));
    if rebuild_epochs {
        tracing::warn!(path = %ep_path.display(), "damaged leader-epoch file; rebuilding it from every segment");
    }
    let mut epochs = epochs_on_disk.clone().flatten().unwrap_or_default();
    let (snapshot_offset, mut producers) = snapshot.unwrap_or((i64::MIN, ProducerState::default()));
    // Segments from this index on are scanned in full.
    let first_unverified = if rebuild_epochs {
        0
    } else if clean {
        bases.len()
    } else {
        checkpoint
            .and_then(|cp| bases.iter().rposition(|b| *b <= cp))
            .unwrap_or(0)
    };
    if !clean {
        tracing::info!(dir = %dir.display(), segments = bases.len() - first_unverified, "no clean shutdown: scanning segments after the checkpoint");
    }
    let mut progress = Progress {
        scanned: 0,
        next_report: RECOVERY_PROGRESS_BYTES,
    };
    let now = now_ms();
    let mut segments = Vec::with_capacity(bases.len());
    // Bytes of torn or corrupt tails cut (not unwritten preallocation).
    let mut truncated_bytes = 0u64;
    let mut requested_cut = false;
    for (i, &base) in bases.iter().enumerate() {
        let last = i + 1 == bases.len();
        let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
        let seg: Segment<S> = Segment::new(dir, base, now);
        let file = storage
            .open(&seg.log_path, false)
            .await
            .map_err(RecoveryError::io(&seg.log_path))?;
        let file_size = file
            .size()
            .await
            .map_err(RecoveryError::io(&seg.log_path))?;
        let loaded = load_indexes(storage, &seg, file_size).await?;
        let producers_covered = snapshot_offset >= next_base || (last && clean && have_snapshot);
        let mut full = i >= first_unverified || loaded.is_none() || !producers_covered;
        let (mut ss, invalid) = loop {
            // Built apart and moved in at the end: no borrow across awaits.
            let mut ss = Segment::<S>::new(dir, base, now).st.into_inner();
            let (start, expected, indexed) = match (&loaded, full) {
                (Some((index, time_index)), false) => {
                    ss.index = index.clone();
                    ss.time_index = time_index.clone();
                    if let Some((ts, rel)) = time_index.last() {
                        ss.max_timestamp = ts;
                        ss.offset_of_max_timestamp = base + rel as i64;
                    }
                    (
                        index.last().map_or(0, |(_, p)| p as u64),
                        if index.is_empty() { Some(base) } else { None },
                        index.last(),
                    )
                }
                _ => (0, Some(base), None),
            };
            ss.size = start;
            let mut sc = Scanner::new(&file, start, file_size, RECOVERY_READ_BYTES, expected)
                .with_readahead();
            let invalid = loop {
                match sc
                    .next(true)
                    .await
                    .map_err(RecoveryError::io(&seg.log_path))?
                {
                    Ok(Some((pos, h))) => {
                        // The last index entry names the batch it points at.
                        if let Some((rel, _)) = indexed.filter(|_| pos == start) {
                            if h.last_offset() != base + rel as i64 {
                                break Some((pos, "index entry does not match its batch".into()));
                            }
                        }
                        if last && cut.is_some_and(|c| h.last_offset() >= c) {
                            requested_cut = true;
                            break Some((pos, "truncation requested".into()));
                        }
                        if h.last_offset() >= next_base {
                            break Some((
                                pos,
                                format!(
                                    "batch ends at offset {} past the next segment",
                                    h.last_offset()
                                ),
                            ));
                        }
                        ss.on_batch(base, &h, pos, cfg.index_interval_bytes);
                        if full && h.base_offset >= snapshot_offset {
                            producers.record(&h);
                        }
                        epochs.observe_batch(h.partition_leader_epoch, h.base_offset);
                    }
                    Ok(None) => break None,
                    Err(ScanEnd::Invalid { position, reason }) => break Some((position, reason)),
                }
            };
            progress.add(dir, sc.bytes_read);
            drop(sc); // may cancel a read-ahead past the valid end
            if invalid.is_some() && !full {
                // Trusted indexes led the scan to bad bytes. They are only a
                // hint: scan the whole segment before truncating or refusing.
                tracing::warn!(segment = %seg.log_path.display(), "indexes do not match the segment; scanning it in full");
                full = true;
                continue;
            }
            break (ss, invalid);
        };
        let invalid = invalid.or_else(|| {
            // A sealed segment must end where the next begins: a shorter
            // one (cut at a batch boundary, or emptied) lost data, and its
            // offsets would read back as nothing at all.
            (!last && ss.next_offset != next_base).then(|| {
                (
                    ss.size,
                    format!(
                        "segment ends at offset {} but the next begins at {next_base}",
                        ss.next_offset
                    ),
                )
            })
        });
        let truncated = invalid.is_some();
        if let Some((position, reason)) = invalid {
            if !last {
                return Err(RecoveryError::Corrupt {
                    segment: seg.log_path.clone(),
                    position,
                    reason,
                });
            }
            let dropped = file_size - position;
            if requested_cut {
                tracing::info!(segment = %seg.log_path.display(), position, dropped_bytes = dropped, "truncating as requested");
            } else if never_written(&file, position).await {
                // Preallocated or zero-filled space after the last batch:
                // no data is lost, so no warning.
                tracing::debug!(segment = %seg.log_path.display(), position, dropped_bytes = dropped, "dropping the log's unwritten tail");
            } else {
                tracing::warn!(segment = %seg.log_path.display(), position, dropped_bytes = dropped, %reason, "truncating a torn or corrupt tail");
                truncated_bytes += dropped;
            }
            file.truncate(position)
                .await
                .map_err(RecoveryError::io(&seg.log_path))?;
            ss.size = position;
        }
        if last && (truncated || !clean) {
            // The scan read what is in the file, synced or not (a kill -9 or
            // a failed fdatasync leaves written, unsynced batches). Make it
            // durable before serving it: an idempotent producer's retry of a
            // batch found here is acknowledged as a duplicate.
            file.fdatasync()
                .await
                .map_err(RecoveryError::io(&seg.log_path))?;
        }
        let rebuilt = loaded
            .as_ref()
            .is_none_or(|(ix, tx)| *ix != ss.index || *tx != ss.time_index);
        if !last && rebuilt {
            tracing::info!(segment = %seg.log_path.display(), "rewriting a missing or stale index");
            rewrite_indexes(storage, &seg, &ss).await?;
        }
        ss.written = ss.size;
        ss.zero_end = ss.size;
        ss.allocated = ss.size.max(file_size.min(ss.size));
        if last {
            let tail_pos = align_down(ss.size);
            let tail = file
                .read_at(tail_pos, (ss.size - tail_pos) as usize)
                .await
                .map_err(RecoveryError::io(&seg.log_path))?
                .to_vec();
            if tail.len() as u64 != ss.size - tail_pos {
                return Err(RecoveryError::Corrupt {
                    segment: seg.log_path.clone(),
                    position: tail_pos,
                    reason: "short read of the last block".into(),
                });
            }
            ss.appender = Some(SegmentAppender::for_log(cfg, ss.size, tail));
        } else {
            ss.sealed = true;
            ss.finalized = true;
        }
        ss.file = Some(Rc::new(file));
        *seg.st.borrow_mut() = ss;
        segments.push(Rc::new(seg));
    }
    let next_offset = segments.last().map_or(0, |s| s.st.borrow().next_offset);
    let log_start_offset = bases.first().copied().unwrap_or(0);
    producers.truncate_from(next_offset);
    epochs.truncate_from_end(next_offset);
    epochs.truncate_from_start(log_start_offset);
    if wiped {
        // Kafka's truncateFullyAndStartAt: nothing of the old log is left.
        producers = ProducerState::default();
        epochs.clear();
    }
    if epochs_on_disk.flatten().unwrap_or_default() != epochs || rebuild_epochs {
        write_file_atomic(storage, dir, &ep_path, &encode_leader_epochs(&epochs))
            .await
            .map_err(RecoveryError::io(&ep_path))?;
    }
    if pending.is_some() {
        finish_truncation(storage, dir, checkpoint, &producers, next_offset).await?;
    }
    if !clean {
        tracing::info!(
            dir = %dir.display(),
            scanned_bytes = progress.scanned,
            truncated_bytes,
            next_offset,
            "recovery done"
        );
    }
    if !clean && !bases.is_empty() {
        // The last segment's name may not be durable yet either.
        storage
            .sync_dir(dir)
            .await
            .map_err(RecoveryError::io(dir))?;
    }
    if clean {
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        storage
            .remove_file(&marker)
            .await
            .map_err(RecoveryError::io(&marker))?;
        storage
            .sync_dir(dir)
            .await
            .map_err(RecoveryError::io(dir))?;
    }
    Ok(Recovered {
        log_start_offset,
        segments,
        next_offset,
        producers,
        epochs,
    })
}

/// The truncation a closed log was asked for, if any. A damaged request is
/// refused: guessing could bring back what a follower had to remove.
async fn read_pending_truncation<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<Option<Truncation>, RecoveryError> {
    let path = dir.join(PENDING_TRUNCATION_FILE);
    let Some(b) = read_file(storage, &path)
        .await
        .map_err(RecoveryError::io(&path))?
    else {
        return Ok(None);
    };
    match decode_truncation(&b) {
        Some(t) => Ok(Some(t)),
        None => Err(RecoveryError::Corrupt {
            segment: path,
            position: 0,
            reason: "damaged pending truncation".into(),
        }),
    }
}

/// The first step of a pending truncation: removes the segments it drops
/// whole, newest first; creates an empty segment where the log starts
/// again if none is left; removes the indexes of the segment left last
/// (the cut may remove what they point at, and the last segment is
/// scanned in full) and the clean-shutdown marker. Returns the segments
/// left and whether the whole log went.
async fn remove_truncated_segments<S: Storage>(
    storage: &S,
    dir: &Path,
    t: Truncation,
    bases: Vec<i64>,
    marker: bool,
) -> Result<(Vec<i64>, bool), RecoveryError> {
    let at = t.offset();
    let keep = |b: i64| match t {
        Truncation::To(o) => b <= o,
        Truncation::Reset(o) => b == o,
    };
    for &b in bases.iter().rev().filter(|b| !keep(**b)) {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(storage, &segment_path(dir, b, suffix)).await?;
        }
    }
    let mut kept: Vec<i64> = bases.into_iter().filter(|b| keep(*b)).collect();
    let wiped = matches!(t, Truncation::Reset(_)) || kept.is_empty();
    if kept.is_empty() {
        let path = segment_path(dir, at, LOG_SUFFIX);
        storage
            .open(&path, true)
            .await
            .map_err(RecoveryError::io(&path))?;
        kept.push(at);
    }
    if let Some(&last) = kept.last() {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(storage, &segment_path(dir, last, suffix)).await?;
        }
    }
    if marker {
        remove_if_present(storage, &dir.join(CLEAN_SHUTDOWN_FILE)).await?;
    }
    storage
        .sync_dir(dir)
        .await
        .map_err(RecoveryError::io(dir))?;
    Ok((kept, wiped))
}

/// The last steps of a pending truncation, once the data is cut and
/// synced: the producer snapshot and the checkpoint may name offsets past
/// the new end, and a snapshot past the end would hide the producers of
/// batches appended later below its offset; then the request goes.
async fn finish_truncation<S: Storage>(
    storage: &S,
    dir: &Path,
    checkpoint: Option<i64>,
    producers: &ProducerState,
    next_offset: i64,
) -> Result<(), RecoveryError> {
    let snap_path = dir.join(SNAPSHOT_FILE);
    write_file_atomic(
        storage,
        dir,
        &snap_path,
        &encode_producer_snapshot(producers, next_offset),
    )
    .await
    .map_err(RecoveryError::io(&snap_path))?;
    if checkpoint.is_some_and(|cp| cp > next_offset) {
        let cp_path = dir.join(CHECKPOINT_FILE);
        write_file_atomic(storage, dir, &cp_path, &encode_checkpoint(next_offset))
            .await
            .map_err(RecoveryError::io(&cp_path))?;
    }
    let path = dir.join(PENDING_TRUNCATION_FILE);
    remove_if_present(storage, &path).await?;
    storage.sync_dir(dir).await.map_err(RecoveryError::io(dir))
}

async fn remove_if_present<S: Storage>(storage: &S, path: &Path) -> Result<(), RecoveryError> {
    match storage.remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RecoveryError::io(path)(e)),
        _ => Ok(()),
    }
}

async fn load_indexes<S: Storage>(
    storage: &S,
    seg: &Segment<S>,
    log_size: u64,
) -> Result<Option<(OffsetIndex, TimeIndex)>, RecoveryError> {
    let ip = seg.path(INDEX_SUFFIX);
    let tp = seg.path(TIME_INDEX_SUFFIX);
    let Some(ib) = read_file(storage, &ip)
        .await
        .map_err(RecoveryError::io(&ip))?
    else {
        return Ok(None);
    };
    let Some(tb) = read_file(storage, &tp)
        .await
        .map_err(RecoveryError::io(&tp))?
    else {
        return Ok(None);
    };
    let Some(index) = OffsetIndex::decode(&ib, log_size) else {
        return Ok(None);
    };
    let Some(time_index) = TimeIndex::decode(&tb, u32::MAX) else {
        return Ok(None);
    };
    Ok(Some((index, time_index)))
}

async fn rewrite_indexes<S: Storage>(
    storage: &S,
    seg: &Segment<S>,
    ss: &SegmentState<S>,
) -> Result<(), RecoveryError> {
    let ip = seg.path(INDEX_SUFFIX);
    let tp = seg.path(TIME_INDEX_SUFFIX);
    write_file(storage, &ip, &ss.index.encode())
        .await
        .map_err(RecoveryError::io(&ip))?;
    write_file(storage, &tp, &ss.time_index.encode())
        .await
        .map_err(RecoveryError::io(&tp))?;
    Ok(())
}

/// Whether the bytes from `position` look never written: a block of
/// zeros, as preallocation and the zero fill leave.
async fn never_written<F: StorageFile>(file: &F, position: u64) -> bool {
    match file.read_at(position, TAIL_PROBE_BYTES).await {
        Ok(b) => b.as_ref().iter().all(|x| *x == 0),
        Err(_) => false,
    }
}
