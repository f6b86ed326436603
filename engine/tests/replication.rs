//! What partition replication asks of the engine, on the simulated disk
//! and the real one: reads below a bound, the append and durability
//! signals, leader epochs stamped and kept in the epoch file, a follower's
//! appends.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use spindle_engine::batch::{set_base_offset, set_partition_leader_epoch};
use spindle_engine::storage::sim::SimRng;
use spindle_engine::storage::{SimDisk, SimStorage};
use spindle_engine::{
    AppendError, BatchCache, EpochEntry, FlushMode, LogConfig, PartitionLog, ReadError,
};
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 << 10,
        index_interval_bytes: 512,
        flush: FlushMode::Batch,
        ..LogConfig::default()
    }
}

/// Base offsets of every batch `read_upto` returns from `offset`, reading
/// on until it returns nothing.
async fn bases_upto<S: spindle_engine::Storage>(
    log: &PartitionLog<S>,
    offset: i64,
    upto: i64,
    max_bytes: u32,
    in_memory: bool,
) -> Vec<i64> {
    let mut out = Vec::new();
    let mut next = offset;
    loop {
        let r = if in_memory {
            log.read_in_memory_upto(next, max_bytes, upto).await
        } else {
            log.read_upto(next, max_bytes, upto).await
        };
        let r = r.expect("read");
        let batches: Vec<_> = r
            .chunks
            .iter()
            .flat_map(|c| split(&chunk_bytes(c)))
            .collect();
        let Some((last, _)) = batches.last() else {
            return out;
        };
        next = last.last_offset() + 1;
        out.extend(batches.iter().map(|(h, _)| h.base_offset));
    }
}

/// A bound inside a batch stops before that batch, on the cache path and
/// the file path alike, whatever the read size; past the log end it is the
/// log end; offsets up to the log end are in range, past it they are not.
#[test]
fn reads_stop_before_the_batch_that_crosses_the_bound() {
    for cache_bytes in [0, 1 << 20] {
        let disk = SimDisk::new();
        run(async move {
            let log = PartitionLog::open_with(
                disk.storage(),
                PathBuf::from("/d/t-0"),
                cfg(),
                BatchCache::new(cache_bytes),
            )
            .await
            .unwrap();
            let mut bases = Vec::new();
            for i in 0..60u64 {
                let info = log
                    .append(batch(i, 1 + (i % 4) as i32, 1, (i as usize * 131) % 900))
                    .await
                    .unwrap();
                bases.push(info.base_offset);
            }
            assert!(log.segment_count() > 3);
            let end = log.log_end_offset();
            for upto in [
                0,
                1,
                2,
                3,
                bases[10],
                bases[10] + 1,
                bases[37] + 2,
                end - 1,
                end,
                end + 50,
            ] {
                let want: Vec<i64> = bases
                    .iter()
                    .zip(bases.iter().skip(1).chain([&end]))
                    .filter(|(_, next)| **next <= upto)
                    .map(|(b, _)| *b)
                    .collect();
                for max_bytes in [1, 700, 1 << 20] {
                    for in_memory in [false, true] {
                        let got = bases_upto(&*log, 0, upto, max_bytes, in_memory).await;
                        assert_eq!(got, want, "upto {upto} max {max_bytes} cache {cache_bytes}");
                    }
                }
            }
            // From the bound on, nothing; up to the log end, in range.
            assert!(log
                .read_upto(bases[5], 1 << 20, bases[5])
                .await
                .unwrap()
                .chunks
                .is_empty());
            assert!(log
                .read_upto(end, 1 << 20, end)
                .await
                .unwrap()
                .chunks
                .is_empty());
            assert!(matches!(
                log.read_upto(end + 1, 1 << 20, end + 5).await,
                Err(ReadError::OffsetOutOfRange { .. })
            ));
        });
    }
}

/// Followers read up to the log end before the leader's fdatasync: a
/// bound past the high watermark returns batches that are appended but
/// not durable yet (from the cache, or from the file once written), while
/// `read` still stops at the high watermark; `wait_for_append` wakes at
/// the append, `wait_for_data` only once the data is durable.
#[test]
fn followers_read_past_the_high_watermark_before_the_fsync() {
    for cache_bytes in [0, 1 << 20] {
        let disk = SimDisk::new();
        let d = disk.clone();
        run(async move {
            let log =
                PartitionLog::open_with(d.storage(), dir(), cfg(), BatchCache::new(cache_bytes))
                    .await
                    .unwrap();
            log.append(batch(0, 2, 1, 100)).await.unwrap();
            assert_eq!(log.durable_offset(), 2);
            let appended = log.wait_for_append();
            let durable = log.wait_for_data();
            d.stall_writes();
            let l = log.clone();
            let append = glommio::spawn_local(async move { l.append(batch(1, 3, 1, 100)).await });
            appended.await;
            assert_eq!((log.log_end_offset(), log.high_watermark()), (5, 2));
            assert_eq!(log.durable_offset(), 2);
            let r = log.read(0, 1 << 20).await.unwrap();
            assert_eq!(
                r.chunks
                    .iter()
                    .map(|c| split(&chunk_bytes(c)).len())
                    .sum::<usize>(),
                1
            );
            let l = log.clone();
            let follower =
                glommio::spawn_local(
                    async move { bases_upto(&*l, 0, i64::MAX, 1 << 20, false).await },
                );
            if cache_bytes > 0 {
                // Served from memory while the leader's write waits.
                assert_eq!(follower.await, [0, 2]);
                d.resume_writes();
            } else {
                // Served from the file once the bytes are written.
                d.resume_writes();
                assert_eq!(follower.await, [0, 2]);
            }
            let info = append.await.unwrap();
            durable.await;
            assert_eq!((info.base_offset, log.high_watermark()), (2, 5));
            assert_eq!(log.durable_offset(), 5);
        });
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/d/t-0")
}

async fn open_sim(disk: &Rc<SimDisk>, cfg: LogConfig) -> Rc<PartitionLog<SimStorage>> {
    PartitionLog::open_with(disk.storage(), dir(), cfg, BatchCache::new(1 << 20))
        .await
        .expect("open")
}

/// A batch as a leader of `epoch` wrote it at `base`.
fn leader_batch(id: u64, count: i32, base: i64, epoch: i32) -> BytesMut {
    leader_batch_sized(id, count, base, epoch, 50)
}

fn leader_batch_sized(id: u64, count: i32, base: i64, epoch: i32, extra: usize) -> BytesMut {
    let mut b = batch(id, count, 1, extra);
    set_base_offset(&mut b, base);
    set_partition_leader_epoch(&mut b, epoch);
    b
}

/// Replicates a batch of producer 7 (epoch 0) with `count` records from
/// `seq`, as a leader of `epoch` wrote it at the log end; returns its
/// base offset.
async fn replicate_idem(log: &PartitionLog<SimStorage>, seq: i32, count: i32, epoch: i32) -> i64 {
    let base = log.log_end_offset();
    let mut b = idem_batch(7, 0, seq, count);
    set_base_offset(&mut b, base);
    set_partition_leader_epoch(&mut b, epoch);
    log.append_replicated(b).await.unwrap();
    base
}

fn pairs(entries: &[EpochEntry]) -> Vec<(i32, i64)> {
    entries.iter().map(|e| (e.epoch, e.start_offset)).collect()
}

/// Every batch of a log, as bytes, up to its log end.
async fn log_bytes<S: spindle_engine::Storage>(log: &PartitionLog<S>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read_upto(next, 1 << 20, i64::MAX).await.expect("read");
        for c in &r.chunks {
            for (h, b) in split(&chunk_bytes(c)) {
                next = h.last_offset() + 1;
                out.push(b);
            }
        }
    }
    out
}

fn epoch_file(disk: &SimDisk) -> String {
    let b = disk
        .read_file(&dir().join("leader-epoch-checkpoint"))
        .unwrap_or_default();
    String::from_utf8(b).expect("text")
}

/// `append` stamps the epoch given to `become_leader` on every batch (the
/// CRC stays valid), and each new epoch starts at the log end in the epoch
/// cache, on disk before `become_leader` returns; queries answer as Kafka.
#[test]
fn a_leader_stamps_its_epoch_and_records_where_it_starts() {
    let disk = SimDisk::new();
    let d = disk.clone();
    run(async move {
        let log = open_sim(&d, cfg()).await;
        let mut unstamped = batch(0, 1, 1, 10);
        set_partition_leader_epoch(&mut unstamped, -1);
        log.append(unstamped).await.unwrap();
        assert_eq!(log.leader_epoch(), None);
        assert_eq!(log.latest_epoch(), None);
        log.become_leader(3).await.unwrap();
        assert_eq!(epoch_file(&d), "0\n1\n3 1\n");
        log.append(batch(1, 2, 1, 10)).await.unwrap();
        log.become_leader(5).await.unwrap();
        log.append(batch(2, 3, 1, 10)).await.unwrap();
        log.become_leader(5).await.unwrap(); // the same epoch again: nothing new
        assert_eq!(pairs(&log.epoch_entries()), [(3, 1), (5, 3)]);
        let epochs: Vec<i32> = log_bytes(&*log)
            .await
            .iter()
            .map(|b| split(b)[0].0.partition_leader_epoch)
            .collect();
        assert_eq!(epochs, [-1, 3, 5]);
        assert_eq!(log.epoch_for_offset(0), None);
        assert_eq!(log.epoch_for_offset(2), Some(3));
        assert_eq!(log.epoch_for_offset(5), Some(5));
        assert_eq!(log.end_offset_for_epoch(5), (5, 6));
        assert_eq!(log.end_offset_for_epoch(3), (3, 3));
        assert_eq!(log.end_offset_for_epoch(4), (3, 3));
        assert_eq!(log.end_offset_for_epoch(1), (1, 1));
        assert_eq!(log.end_offset_for_epoch(6), (-1, -1));
        assert_eq!(epoch_file(&d), "0\n2\n3 1\n5 3\n");
        // The file is durable: a power loss keeps it, and the reopened log
        // has the same epochs and stamps none until told again.
        log.become_leader(7).await.unwrap();
        drop(log);
        d.crash(&mut SimRng::new(7));
        assert_eq!(epoch_file(&d), "0\n3\n3 1\n5 3\n7 6\n");
        let log = open_sim(&d, cfg()).await;
        // Kafka drops an epoch that wrote nothing when it recovers.
        assert_eq!(pairs(&log.epoch_entries()), [(3, 1), (5, 3)]);
        assert_eq!(log.leader_epoch(), None);
        log.become_leader(7).await.unwrap();
        log.append(batch(3, 1, 1, 10)).await.unwrap();
        assert_eq!(pairs(&log.epoch_entries()), [(3, 1), (5, 3), (7, 6)]);
    });
}

/// A follower's appends keep the leader's bytes, offsets and epochs, and
/// learn its epochs; the follower's log then equals the leader's byte for
/// byte, and so does its epoch cache.
#[test]
fn a_follower_appends_the_leaders_batches_byte_for_byte() {
    let disk = SimDisk::new();
    run(async move {
        let leader = PartitionLog::open_with(
            disk.storage(),
            PathBuf::from("/d/leader-0"),
            cfg(),
            BatchCache::new(0),
        )
        .await
        .unwrap();
        let follower = open_sim(&disk, cfg()).await;
        let mut next = 0;
        for (epoch, n) in [(0, 5u64), (2, 1), (3, 30)] {
            leader.become_leader(epoch).await.unwrap();
            for i in 0..n {
                leader
                    .append(batch(i, 1 + (i % 3) as i32, 1, (i as usize * 97) % 700))
                    .await
                    .unwrap();
            }
            // Fetch as a follower does: whatever the leader has, in
            // chunks of a few batches.
            while next < leader.log_end_offset() {
                let r = leader.read_upto(next, 2000, i64::MAX).await.unwrap();
                let mut fetched = BytesMut::new();
                for c in &r.chunks {
                    fetched.extend_from_slice(&chunk_bytes(c));
                }
                let info = follower.append_replicated(fetched).await.unwrap();
                assert_eq!(info.base_offset, next);
                assert!(!info.duplicate);
                next = info.last_offset + 1;
                assert_eq!(follower.durable_offset(), next, "synced under flush=batch");
            }
        }
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(log_bytes(&*follower).await, log_bytes(&*leader).await);
        assert_eq!(follower.epoch_entries(), leader.epoch_entries());
        assert_eq!(pairs(&follower.epoch_entries()), [(0, 0), (2, 9), (3, 10)]);
        assert_eq!(
            epoch_file(&disk),
            "0\n3\n0 0\n2 9\n3 10\n",
            "the follower's epoch file"
        );
    });
}

/// A follower refuses batches that do not continue its log, and bad
/// batches, writing nothing of the call.
#[test]
fn a_follower_refuses_offsets_that_do_not_continue_its_log() {
    let disk = SimDisk::new();
    run(async move {
        let log = open_sim(&disk, cfg()).await;
        log.append_replicated(leader_batch(0, 2, 0, 1))
            .await
            .unwrap();
        let refused = |r: Result<_, AppendError>| match r {
            Err(AppendError::OffsetMismatch { expected, got }) => (expected, got),
            other => panic!("expected OffsetMismatch, got {other:?}"),
        };
        assert_eq!(
            refused(log.append_replicated(leader_batch(1, 1, 3, 1)).await),
            (2, 3)
        );
        assert_eq!(
            refused(log.append_replicated(leader_batch(1, 1, 1, 1)).await),
            (2, 1)
        );
        // A gap inside the call.
        let mut two = leader_batch(1, 1, 2, 1);
        two.extend_from_slice(&leader_batch(2, 1, 4, 1));
        assert_eq!(refused(log.append_replicated(two).await), (3, 4));
        // A bad CRC, a cut batch, garbage.
        let mut bad = leader_batch(1, 1, 2, 1);
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(
            log.append_replicated(bad).await,
            Err(AppendError::Corrupt(_))
        ));
        let cut = leader_batch(1, 1, 2, 1);
        let cut = BytesMut::from(&cut[..cut.len() - 3]);
        assert!(log.append_replicated(cut).await.is_err());
        let mut garbage = leader_batch(1, 1, 2, 1);
        garbage[16] = 7;
        assert!(log.append_replicated(garbage).await.is_err());
        assert!(log
            .append_replicated(BytesMut::from(&[1u8, 2, 3][..]))
            .await
            .is_err());
        assert_eq!(
            log.log_end_offset(),
            2,
            "nothing of a refused call is written"
        );
        log.append_replicated(leader_batch(1, 1, 2, 1))
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), 3);
    });
}

/// The producer state learns replicated batches without refusing any, so
/// a follower that becomes leader de-duplicates a retry it never saw first
/// hand and expects the next sequence.
#[test]
fn a_follower_learns_idempotent_producers_from_replicated_batches() {
    let disk = SimDisk::new();
    run(async move {
        let log = open_sim(&disk, cfg()).await;
        for seq in [0, 1, 2, 3] {
            replicate_idem(&log, seq, 2, 4).await;
        }
        let next = log.log_end_offset();
        // Out of order for a leader, but the leader decided: taken.
        let mut odd = idem_batch(7, 0, 9, 1);
        set_base_offset(&mut odd, next);
        log.append_replicated(odd).await.unwrap();
        log.become_leader(5).await.unwrap();
        let retry = log.append(idem_batch(7, 0, 9, 1)).await.unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, 8);
        assert!(matches!(
            log.append(idem_batch(7, 0, 4, 1)).await,
            Err(AppendError::OutOfOrderSequence { expected: 10, .. })
        ));
        let info = log.append(idem_batch(7, 0, 10, 1)).await.unwrap();
        assert_eq!((info.base_offset, info.duplicate), (9, false));
    });
}

/// Recovery rebuilds the epoch cache: a stale file is extended from the
/// batches it scans, entries past the log end go, a damaged file is
/// rebuilt from every segment; the file is rewritten.
#[test]
fn recovery_extends_a_stale_epoch_file_and_rebuilds_a_damaged_one() {
    let disk = SimDisk::new();
    let d = disk.clone();
    run(async move {
        let cfg = LogConfig {
            segment_bytes_max: 4096,
            ..cfg()
        };
        let log = open_sim(&d, cfg.clone()).await;
        let mut next = 0;
        for (i, epoch) in [1, 1, 2, 2, 2, 4, 6, 6].into_iter().enumerate() {
            let b = leader_batch_sized(i as u64, 20, next, epoch, 1500);
            next = log.append_replicated(b).await.unwrap().last_offset + 1;
        }
        assert!(log.segment_count() > 2);
        let want = [(1, 0), (2, 40), (4, 100), (6, 120)];
        assert_eq!(pairs(&log.epoch_entries()), want);
        drop(log); // unclean: the last segment is scanned
        let path = dir().join("leader-epoch-checkpoint");
        // Stale: the last epoch is missing.
        d.write_file_durable(&path, b"0\n3\n1 0\n2 40\n4 100\n".to_vec());
        let log = open_sim(&d, cfg.clone()).await;
        assert_eq!(pairs(&log.epoch_entries()), want);
        log.close().await.unwrap();
        drop(log);
        d.write_file_durable(&path, b"0\n5\n1 0\n2 40\n4 100\n6 120\n9 999\n".to_vec());
        let log = open_sim(&d, cfg.clone()).await;
        assert_eq!(
            pairs(&log.epoch_entries()),
            want,
            "an entry past the end goes"
        );
        assert_eq!(epoch_file(&d), "0\n4\n1 0\n2 40\n4 100\n6 120\n");
        log.close().await.unwrap();
        drop(log);
        // Damaged: every segment is scanned, even after a clean close.
        d.write_file_durable(&path, b"0\n2\n1 0\n".to_vec());
        let log = open_sim(&d, cfg).await;
        assert_eq!(pairs(&log.epoch_entries()), want);
        assert_eq!(epoch_file(&d), "0\n4\n1 0\n2 40\n4 100\n6 120\n");
    });
}

/// On the real disk: an epoch file that is missing is rebuilt from the
/// batches recovery reads: the segments past the checkpoint after an
/// unclean stop, the tail past the last index entry after a clean one (a
/// directory from before leader epochs).
#[test]
fn dma_a_missing_epoch_file_is_rebuilt_from_scanned_batches() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = tmp.path().join("t-0");
    run(async move {
        let cfg = LogConfig {
            flush: FlushMode::Batch,
            ..LogConfig::default()
        };
        let cache = BatchCache::new(1 << 20);
        let log = PartitionLog::open(path.clone(), cfg.clone(), cache.clone())
            .await
            .unwrap();
        log.append_replicated(leader_batch(0, 3, 0, 2))
            .await
            .unwrap();
        log.append_replicated(leader_batch(1, 3, 3, 5))
            .await
            .unwrap();
        drop(log);
        let file = path.join("leader-epoch-checkpoint");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n2 0\n5 3\n");
        std::fs::remove_file(&file).unwrap();
        let log = PartitionLog::open(path.clone(), cfg.clone(), cache.clone())
            .await
            .unwrap();
        assert_eq!(pairs(&log.epoch_entries()), [(2, 0), (5, 3)]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n2 0\n5 3\n");
        log.close().await.unwrap();
        drop(log);
        std::fs::remove_file(&file).unwrap();
        let log = PartitionLog::open(path.clone(), cfg, cache).await.unwrap();
        assert_eq!(pairs(&log.epoch_entries()), [(2, 0), (5, 3)]);
        assert!(Path::new(&file).exists());
    });
}

/// A log of 40 batches of 1 to 3 records over several segments, led in
/// epochs 1 (batches 0..10), 3 (10..25) and 4 (25..40); the base offset
/// of every batch and the log end.
async fn epoch_log(
    disk: &Rc<SimDisk>,
    cfg: LogConfig,
) -> (Rc<PartitionLog<SimStorage>>, Vec<i64>, i64) {
    let log = open_sim(disk, cfg).await;
    let mut bases = Vec::new();
    for i in 0..40u64 {
        match i {
            0 => log.become_leader(1).await.unwrap(),
            10 => log.become_leader(3).await.unwrap(),
            25 => log.become_leader(4).await.unwrap(),
            _ => {}
        }
        let info = log
            .append(batch(i, 1 + (i % 3) as i32, i as i64, 600))
            .await
            .unwrap();
        bases.push(info.base_offset);
    }
    let end = log.log_end_offset();
    assert!(log.segment_count() >= 4, "{} segments", log.segment_count());
    (log, bases, end)
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096,
        ..cfg()
    }
}

/// Payload ids of the batches a log holds, checking their offsets are
/// contiguous from its start.
async fn ids(log: &PartitionLog<SimStorage>) -> Vec<u64> {
    let mut next = log.log_start_offset();
    let mut out = Vec::new();
    for b in log_bytes(log).await {
        let h = split(&b)[0].0;
        assert_eq!(h.base_offset, next, "offsets contiguous");
        next = h.last_offset() + 1;
        out.push(id_of(&b));
    }
    assert_eq!(next, log.log_end_offset());
    out
}

/// Truncation at a batch boundary, inside a batch and in an earlier
/// segment: the batch holding the offset and every later one go, later
/// segments' files with them, epochs starting at or after the new end go;
/// a reopen (clean or after a power loss) finds the same log, and appends
/// continue at the new end.
#[test]
fn truncation_removes_whole_batches_from_the_one_holding_the_offset() {
    // Batch i holds 1 + i % 3 records: "inside" batches hold several.
    for (target_batch, inside) in [
        (33usize, false),
        (31, true),
        (14, true),
        (10, false),
        (4, true),
    ] {
        let disk = SimDisk::new();
        let d = disk.clone();
        run(async move {
            let (log, bases, _) = epoch_log(&d, small_segments()).await;
            let offset = bases[target_batch] + inside as i64;
            let segments_before = log.segment_count();
            let log = log.truncate_to(offset).await.unwrap();
            let end = bases[target_batch];
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(log.high_watermark(), end);
            assert_eq!(
                ids(&log).await,
                (0..target_batch as u64).collect::<Vec<_>>()
            );
            assert!(log.segment_count() <= segments_before);
            let logs = d
                .files()
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .count();
            assert_eq!(logs, log.segment_count(), "no segment file past the log");
            let want: Vec<(i32, i64)> = [(1, 0), (3, bases[10]), (4, bases[25])]
                .into_iter()
                .filter(|(_, s)| *s < end)
                .collect();
            assert_eq!(pairs(&log.epoch_entries()), want);
            assert_eq!(log.leader_epoch(), None, "a truncated log is a follower");
            assert!(!d.files().iter().any(|p| p.ends_with("pending-truncation")));
            // The same log after a clean reopen and after a power loss.
            log.close().await.unwrap();
            drop(log);
            let log = open_sim(&d, small_segments()).await;
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(pairs(&log.epoch_entries()), want);
            drop(log);
            d.crash(&mut SimRng::new(target_batch as u64));
            let log = open_sim(&d, small_segments()).await;
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(ids(&log).await.len(), target_batch);
            // A follower goes on from there.
            let info = log
                .append_replicated(leader_batch(99, 2, end, 6))
                .await
                .unwrap();
            assert_eq!(info.base_offset, end);
            assert_eq!(log.epoch_for_offset(end), Some(6));
        });
    }
}

/// Truncating the whole log, or below its start, leaves it empty, starting
/// at the offset asked (Kafka's truncateFullyAndStartAt below the start).
#[test]
fn truncation_of_the_whole_log() {
    let disk = SimDisk::new();
    let d = disk.clone();
    run(async move {
        let (log, _, _) = epoch_log(&d, small_segments()).await;
        let log = log.truncate_to(0).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        assert!(log.epoch_entries().is_empty());
        assert!(ids(&log).await.is_empty());
        log.append_replicated(leader_batch(1, 1, 0, 2))
            .await
            .unwrap();
        // A log that starts at 100 (a reset), truncated below it.
        let log = log.reset_to(100).await.unwrap();
        log.append_replicated(leader_batch(2, 3, 100, 3))
            .await
            .unwrap();
        let log = log.truncate_to(40).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
        assert!(log.epoch_entries().is_empty());
        drop(log);
        let log = open_sim(&d, small_segments()).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    });
}

/// A follower whose leader's log starts past its end starts again there:
/// empty, with no producer state and no epochs, durably.
#[test]
fn reset_starts_an_empty_log_at_the_offset() {
    for offset in [7i64, 500] {
        let disk = SimDisk::new();
        let d = disk.clone();
        run(async move {
            let log = open_sim(&d, small_segments()).await;
            for seq in 0..4 {
                replicate_idem(&log, seq * 3, 3, 2).await;
            }
            let log = log.reset_to(offset).await.unwrap();
            assert_eq!(
                (log.log_start_offset(), log.log_end_offset()),
                (offset, offset)
            );
            assert!(log.epoch_entries().is_empty());
            assert!(ids(&log).await.is_empty());
            log.become_leader(3).await.unwrap();
            // The producer is unknown: any sequence is taken.
            let info = log.append(idem_batch(7, 0, 2, 1)).await.unwrap();
            assert_eq!((info.base_offset, info.duplicate), (offset, false));
            drop(log);
            d.crash(&mut SimRng::new(offset as u64));
            let log = open_sim(&d, small_segments()).await;
            assert_eq!(log.log_start_offset(), offset);
            assert_eq!(log.log_end_offset(), offset + 1);
            assert_eq!(pairs(&log.epoch_entries()), [(3, offset)]);
        });
    }
}

/// After a truncation the producer state no longer knows the sequences of
/// the batches removed: a leader takes them again as new batches, at the
/// new end, and expects the sequence after the last one kept.
#[test]
fn truncation_forgets_the_removed_batches_sequences() {
    let disk = SimDisk::new();
    run(async move {
        let log = open_sim(&disk, small_segments()).await;
        let mut bases = Vec::new();
        for seq in 0..6 {
            bases.push(replicate_idem(&log, seq, 1, 1).await);
            // Other producers, so that segments roll between them.
            let b = leader_batch_sized(seq as u64, 1, log.log_end_offset(), 1, 1500);
            log.append_replicated(b).await.unwrap();
        }
        let log = log.truncate_to(bases[3]).await.unwrap();
        log.become_leader(2).await.unwrap();
        assert!(matches!(
            log.append(idem_batch(7, 0, 4, 1)).await,
            Err(AppendError::OutOfOrderSequence { expected: 3, .. })
        ));
        let retry = log.append(idem_batch(7, 0, 2, 1)).await.unwrap();
        assert_eq!((retry.base_offset, retry.duplicate), (bases[2], true));
        let again = log.append(idem_batch(7, 0, 3, 1)).await.unwrap();
        assert_eq!((again.base_offset, again.duplicate), (bases[3], false));
    });
}

/// At or past the log end nothing is cut: only epochs starting there go
/// (a leader's epoch that wrote nothing), in place and durably.
#[test]
fn truncation_at_the_log_end_removes_only_epochs() {
    let disk = SimDisk::new();
    let d = disk.clone();
    run(async move {
        let (log, bases, end) = epoch_log(&d, small_segments()).await;
        log.become_leader(6).await.unwrap();
        assert_eq!(log.end_offset_for_epoch(6), (6, end));
        let same = log.truncate_to(end).await.unwrap();
        assert!(Rc::ptr_eq(&same, &log), "done in place");
        assert_eq!(
            pairs(&log.epoch_entries()),
            [(1, 0), (3, bases[10]), (4, bases[25])]
        );
        assert_eq!(log.leader_epoch(), None);
        assert!(epoch_file(&d).ends_with(&format!("4 {}\n", bases[25])));
        let same = log.truncate_to(end + 10).await.unwrap();
        assert!(Rc::ptr_eq(&same, &log));
        assert_eq!(log.log_end_offset(), end);
    });
}

/// A truncation recorded for a closed log is done by its next open, and a
/// damaged request stops the open: guessing could bring back what a
/// follower had to remove.
#[test]
fn a_recorded_truncation_is_done_by_the_next_open() {
    let disk = SimDisk::new();
    let d = disk.clone();
    run(async move {
        let (log, bases, _) = epoch_log(&d, small_segments()).await;
        log.close().await.unwrap();
        drop(log);
        spindle_engine::record_truncation(
            &d.storage(),
            &dir(),
            spindle_engine::Truncation::To(bases[20]),
        )
        .await
        .unwrap();
        let path = dir().join("pending-truncation");
        let request = d.read_file(&path).unwrap();
        let mut damaged = request.clone();
        damaged[3] ^= 1;
        d.write_file_durable(&path, damaged);
        assert!(matches!(
            PartitionLog::open_with(d.storage(), dir(), small_segments(), BatchCache::new(0)).await,
            Err(spindle_engine::RecoveryError::Corrupt { .. })
        ));
        d.write_file_durable(&path, request);
        let log = open_sim(&d, small_segments()).await;
        assert_eq!(log.log_end_offset(), bases[20]);
        assert!(d.read_file(&path).is_none());
    });
}

/// On the real disk: the segment holding the offset is cut at the batch
/// boundary, later segments and their indexes are gone, and the log
/// reopens to the same end.
#[test]
fn dma_truncation_cuts_the_files() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = tmp.path().join("t-0");
    run(async move {
        let cfg = LogConfig {
            segment_bytes_max: 16 << 10,
            index_interval_bytes: 1024,
            flush: FlushMode::Batch,
            ..LogConfig::default()
        };
        let cache = BatchCache::new(0);
        let log = PartitionLog::open(path.clone(), cfg.clone(), cache.clone())
            .await
            .unwrap();
        log.become_leader(1).await.unwrap();
        let mut bases = Vec::new();
        for i in 0..60u64 {
            bases.push(log.append(batch(i, 2, 1, 900)).await.unwrap().base_offset);
        }
        assert!(log.segment_count() >= 3);
        let log = log.truncate_to(bases[9] + 1).await.unwrap();
        assert_eq!(log.log_end_offset(), bases[9]);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".log") || n.ends_with("index"))
            .collect();
        names.sort();
        assert_eq!(names, ["00000000000000000000.log"], "{names:?}");
        let size = std::fs::metadata(path.join("00000000000000000000.log"))
            .unwrap()
            .len();
        let batch_len = batch(0, 2, 1, 900).len() as u64;
        assert_eq!(size, 9 * batch_len);
        let all = read_all(&*log, 0, 1 << 20).await;
        assert_eq!(all.len(), 9);
        log.close().await.unwrap();
        drop(log);
        let log = PartitionLog::open(path, cfg, cache).await.unwrap();
        assert_eq!(log.log_end_offset(), bases[9]);
        assert_eq!(pairs(&log.epoch_entries()), [(1, 0)]);
    });
}

/// After a truncation below the producer snapshot's offset, batches
/// appended below that offset are still in the producer state after an
/// unclean reopen: the truncation rewrote the snapshot at the new end (one
/// left past it would make recovery skip them).
#[test]
fn producers_appended_after_a_truncation_survive_an_unclean_reopen() {
    let disk = SimDisk::new();
    let d = disk.clone();
    run(async move {
        let log = open_sim(&d, small_segments()).await;
        for seq in 0..8 {
            replicate_idem(&log, seq, 1, 1).await;
        }
        // The clean close writes the snapshot at the log end, 8.
        log.close().await.unwrap();
        drop(log);
        let log = open_sim(&d, small_segments()).await;
        let log = log.truncate_to(3).await.unwrap();
        log.become_leader(2).await.unwrap();
        // Unlike the batches removed: three records in one batch.
        let info = log.append(idem_batch(7, 0, 3, 3)).await.unwrap();
        assert_eq!(info.base_offset, 3);
        log.append(idem_batch(7, 0, 6, 1)).await.unwrap();
        drop(log); // unclean
        let log = open_sim(&d, small_segments()).await;
        let retry = log.append(idem_batch(7, 0, 3, 3)).await.unwrap();
        assert_eq!((retry.base_offset, retry.duplicate), (3, true));
        let info = log.append(idem_batch(7, 0, 7, 1)).await.unwrap();
        assert_eq!((info.base_offset, info.duplicate), (7, false));
    });
}
