//! Opening a partition directory: finds segments, trusts what a clean
//! shutdown or a checkpoint vouches for, scans the rest batch by batch with
//! CRC checks, truncates a torn tail, rebuilds missing or stale indexes, the
//! idempotent-producer state and the leader-epoch cache.
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

use crate::config::LogConfig;
use crate::constants::{RECOVERY_PROGRESS_BYTES, RECOVERY_READ_BYTES, TAIL_PROBE_BYTES};
use crate::error::RecoveryError;
use crate::layout::{
    decode_checkpoint, decode_leader_epochs, decode_producer_snapshot, encode_leader_epochs,
    is_temp_name, parse_log_name, read_file, write_file, write_file_atomic, CHECKPOINT_FILE,
    CLEAN_SHUTDOWN_FILE, INDEX_SUFFIX, LEADER_EPOCH_FILE, SNAPSHOT_FILE, TIME_INDEX_SUFFIX,
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
    let clean = names.iter().any(|n| n == CLEAN_SHUTDOWN_FILE);
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
            if never_written(&file, position).await {
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
    if epochs_on_disk.flatten().unwrap_or_default() != epochs || rebuild_epochs {
        write_file_atomic(storage, dir, &ep_path, &encode_leader_epochs(&epochs))
            .await
            .map_err(RecoveryError::io(&ep_path))?;
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
