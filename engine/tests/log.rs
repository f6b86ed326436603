//! Append/read round trips, rolls, indexes, timestamps and reopen, on the
//! real DMA storage and on the simulated disk.

mod common;

use common::*;
use proptest::prelude::*;
use spindle_engine::storage::SimDisk;
use spindle_engine::{
    AppendError, BatchCache, FlushMode, LogConfig, PartitionLog, ReadChunk, ReadError, WriteBudget,
};
use std::path::PathBuf;

fn small_cfg(flush: FlushMode) -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 10,
        index_interval_bytes: 1024,
        flush,
        ..LogConfig::default()
    }
}

#[test]
fn dma_append_read_roll_and_reopen() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("topic-0");
    run(async move {
        let cache = BatchCache::new(16 << 10);
        let log = PartitionLog::open(path.clone(), small_cfg(FlushMode::Batch), cache.clone())
            .await
            .unwrap();
        let mut expected = Vec::new();
        for i in 0..200u64 {
            let b = batch(
                i,
                1 + (i % 3) as i32,
                1000 + i as i64,
                (i as usize * 37) % 3000,
            );
            let info = log.append(b).await.unwrap();
            assert!(!info.duplicate);
            expected.push((info.base_offset, i));
        }
        assert!(log.segment_count() > 3, "segments rolled");
        assert_eq!(log.high_watermark(), log.log_end_offset());
        let all = read_all(&*log, 0, 10_000).await;
        assert_eq!(all.len(), 200);
        for ((h, b), (off, id)) in all.iter().zip(&expected) {
            assert_eq!(h.base_offset, *off);
            assert_eq!(id_of(b), *id);
        }
        // Old data comes back as file ranges, the tail from the cache.
        let r = log.read(0, 1).await.unwrap();
        assert!(matches!(r.chunks[0], ReadChunk::File(_)));
        let tail = log.read(expected[199].0, 1).await.unwrap();
        assert!(matches!(tail.chunks[0], ReadChunk::Memory(_)));
        // Every offset inside a batch finds its batch.
        for (off, id) in expected.iter().step_by(17) {
            let r = log.read(*off + (*id % 3) as i64, 1).await.unwrap();
            let (h, _) = &split(&chunk_bytes(&r.chunks[0]))[0];
            assert_eq!(h.base_offset, *off);
        }
        assert_eq!(
            log.offset_for_timestamp(1000 + 150)
                .await
                .unwrap()
                .map(|x| x.0),
            Some(expected[150].0)
        );
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap().map(|x| x.0),
            Some(0)
        );
        assert_eq!(log.offset_for_timestamp(99_999).await.unwrap(), None);
        let end = log.log_end_offset();
        assert!(matches!(
            log.read(end + 1, 100).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        assert!(log.read(end, 100).await.unwrap().chunks.is_empty());
        log.close().await.unwrap();
        assert!(matches!(
            log.append(batch(1, 1, 1, 0)).await,
            Err(AppendError::Closed)
        ));
        drop(log);

        // Clean reopen: same content, appends continue.
        let log = PartitionLog::open(path.clone(), small_cfg(FlushMode::Batch), cache.clone())
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(read_all(&*log, 0, 1 << 20).await.len(), 200);
        let info = log.append(batch(500, 2, 5000, 10)).await.unwrap();
        assert_eq!(info.base_offset, end);
        drop(log); // no close: the next open recovers

        let log = PartitionLog::open(path.clone(), small_cfg(FlushMode::Batch), cache)
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), end + 2);
        let all = read_all(&*log, 0, 1 << 20).await;
        assert_eq!(all.len(), 201);
        assert_eq!(id_of(&all[200].1), 500);
        log.delete().await.unwrap();
        assert!(!path.exists());
    });
}

#[test]
fn dma_flush_modes_and_concurrent_appenders() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for mode in ["batch", "never", "interval:5"] {
        let path = dir.path().join(format!("t-{}", mode.replace(':', "_")));
        let flush: FlushMode = mode.parse().unwrap();
        run(async move {
            let cache = BatchCache::new(1 << 20);
            let cfg = LogConfig {
                segment_bytes_max: 256 << 10,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(
                path.clone(),
                LogConfig {
                    flush,
                    ..cfg.clone()
                },
                cache.clone(),
            )
            .await
            .unwrap();
            let mut tasks = Vec::new();
            for t in 0..8u64 {
                let log = log.clone();
                tasks.push(glommio::spawn_local(async move {
                    for i in 0..40u64 {
                        log.append(batch(t * 1000 + i, 1, 1, 2000)).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
            assert_eq!(log.log_end_offset(), 320);
            assert_eq!(log.high_watermark(), 320);
            log.close().await.unwrap();
            drop(log);
            let log = PartitionLog::open(path, cfg, cache).await.unwrap();
            let all = read_all(&*log, 0, 1 << 20).await;
            assert_eq!(all.len(), 320);
        });
    }
}

#[test]
fn bad_batch_is_rejected_and_log_unchanged() {
    let disk = SimDisk::new();
    run(async move {
        let log = PartitionLog::open_with(
            disk.storage(),
            PathBuf::from("/d/t-0"),
            small_cfg(FlushMode::Batch),
            BatchCache::new(1 << 20),
        )
        .await
        .unwrap();
        log.append(batch(1, 1, 1, 100)).await.unwrap();
        let files_before: Vec<_> = disk
            .files()
            .into_iter()
            .map(|p| (disk.read_file(&p), p))
            .collect();
        let mut two = batch(2, 1, 1, 100);
        let mut bad = batch(3, 1, 1, 100);
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        two.extend_from_slice(&bad);
        assert!(matches!(
            log.append(two).await,
            Err(AppendError::Corrupt(_))
        ));
        assert_eq!(log.log_end_offset(), 1);
        let files_after: Vec<_> = disk
            .files()
            .into_iter()
            .map(|p| (disk.read_file(&p), p))
            .collect();
        assert_eq!(files_before, files_after, "nothing written");
        let info = log.append(batch(4, 1, 1, 100)).await.unwrap();
        assert_eq!(info.base_offset, 1);
    });
}

fn sim_round_trip(
    sizes: Vec<(i32, usize, i64)>,
    seg_kib: u64,
    interval: u32,
    flush: FlushMode,
    cache_bytes: u64,
) {
    let disk = SimDisk::new();
    run(async move {
        let dir = PathBuf::from("/d/t-1");
        let cfg = LogConfig {
            segment_bytes_max: seg_kib << 10,
            index_interval_bytes: interval,
            flush,
            ..LogConfig::default()
        };
        let log = PartitionLog::open_with(
            disk.storage(),
            dir.clone(),
            cfg.clone(),
            BatchCache::new(cache_bytes),
        )
        .await
        .unwrap();
        let mut offs = Vec::new();
        let mut ts = 0;
        for (i, (count, extra, dts)) in sizes.iter().enumerate() {
            ts += dts;
            let info = log
                .append(batch(i as u64, *count, ts, *extra))
                .await
                .unwrap();
            offs.push((info.base_offset, info.last_offset, ts));
        }
        let check = |all: Vec<(spindle_engine::BatchHeader, bytes::Bytes)>| {
            assert_eq!(all.len(), offs.len());
            for (i, ((h, b), (base, last, _))) in all.iter().zip(&offs).enumerate() {
                assert_eq!((h.base_offset, h.last_offset()), (*base, *last));
                assert_eq!(id_of(b), i as u64);
            }
        };
        check(read_all(&*log, 0, 3000).await);
        // Reads starting inside batches.
        for (base, last, _) in offs.iter().step_by(7) {
            let r = log.read(*last, 1).await.unwrap();
            let (h, _) = &split(&chunk_bytes(&r.chunks[0]))[0];
            assert_eq!(h.base_offset, *base);
        }
        // Timestamps are non-decreasing here, so the first batch with
        // maxTimestamp >= ts is the first with that timestamp.
        for (i, (_, _, t)) in offs.iter().enumerate().step_by(5) {
            let first = offs.iter().find(|o| o.2 >= *t).unwrap();
            let got = log.offset_for_timestamp(*t).await.unwrap();
            assert_eq!(got, Some((first.0, first.2)), "timestamp lookup {i}");
        }
        log.close().await.unwrap();
        drop(log);
        let log = PartitionLog::open_with(disk.storage(), dir, cfg, BatchCache::new(cache_bytes))
            .await
            .unwrap();
        check(read_all(&*log, 0, 3000).await);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn round_trips_across_rolls(
        sizes in proptest::collection::vec((1i32..20, 0usize..6000, 0i64..3), 1..60),
        seg_kib in 8u64..40,
        interval in 64u32..4096,
        never in any::<bool>(),
        cache_bytes in prop_oneof![Just(0u64), Just(1u64 << 20)],
    ) {
        let flush = if never { FlushMode::Never } else { FlushMode::Batch };
        sim_round_trip(sizes, seg_kib, interval, flush, cache_bytes);
    }
}

#[test]
fn segments_roll_by_age() {
    let disk = SimDisk::new();
    run(async move {
        let dir = PathBuf::from("/d/t-age");
        let mut cfg = small_cfg(FlushMode::Batch);
        cfg.segment_ms_max = Some(60_000);
        let log =
            PartitionLog::open_with(disk.storage(), dir.clone(), cfg.clone(), BatchCache::new(0))
                .await
                .unwrap();
        for i in 0..5 {
            log.append(batch(i, 1, 1, 10)).await.unwrap();
        }
        assert_eq!(log.segment_count(), 1, "young segment keeps growing");
        cfg.segment_ms_max = Some(0);
        log.set_config(cfg);
        for i in 5..8 {
            log.append(batch(i, 1, 1, 10)).await.unwrap();
        }
        assert_eq!(log.segment_count(), 4, "every append found an aged segment");
        assert_eq!(read_all(&*log, 0, 1 << 20).await.len(), 8);
    });
}

#[test]
fn wait_for_data_wakes_on_append_and_close() {
    let disk = SimDisk::new();
    run(async move {
        let dir = PathBuf::from("/d/t-wait");
        let log = PartitionLog::open_with(
            disk.storage(),
            dir,
            small_cfg(FlushMode::Batch),
            BatchCache::new(1 << 20),
        )
        .await
        .unwrap();
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move {
                let before = log.high_watermark();
                log.wait_for_data().await;
                (before, log.high_watermark())
            })
        };
        glommio::yield_if_needed().await;
        futures_lite::future::yield_now().await;
        log.append(batch(1, 3, 1, 10)).await.unwrap();
        assert_eq!(waiter.await, (0, 3));
        let closed = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_for_data().await })
        };
        futures_lite::future::yield_now().await;
        log.close().await.unwrap();
        closed.await;
    });
}

/// Appends 3 MiB batches to `logs` logs under flush=never, one task per log,
/// sharing one write budget, on a simulated disk that has stopped
/// completing writes; returns the budget's peak once every appender waits.
/// Each log's writer holds its queue depth of buffers in flight (handed to
/// the disk, so no longer counted) and the rest pile up as unwritten bytes.
fn write_behind_peak(budget_bytes: u64, logs: usize) -> u64 {
    run(async move {
        let disk = SimDisk::new();
        disk.stall_writes();
        let cache = BatchCache::new(0);
        let budget = WriteBudget::new(budget_bytes);
        let finished = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut tasks = Vec::new();
        for i in 0..logs {
            let log = PartitionLog::open_with(
                disk.storage(),
                PathBuf::from(format!("/wb-{i}")),
                LogConfig {
                    flush: FlushMode::Never,
                    ..LogConfig::default()
                },
                cache.clone(),
            )
            .await
            .unwrap();
            log.set_write_budget(budget.clone());
            let finished = finished.clone();
            tasks.push(glommio::spawn_local(async move {
                // 32 MiB in flight plus the log's own bound of 32 MiB, and more.
                for n in 0..24u64 {
                    log.append(batch(n, 1, 1_000, 3 << 20)).await.unwrap();
                }
                finished.set(finished.get() + 1);
            }));
        }
        // Wait until the appenders stop making progress (debug builds copy
        // and checksum slowly), at most 60 s.
        let (mut last, mut still) = (u64::MAX, 0);
        for _ in 0..600 {
            glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            let used = budget.used_bytes();
            still = if used == last { still + 1 } else { 0 };
            last = used;
            if still == 3 {
                break;
            }
        }
        assert_eq!(still, 3, "appenders settle");
        assert_eq!(
            finished.get(),
            0,
            "every appender waits for the stalled disk"
        );
        // The stalled tasks are dropped with the executor.
        budget.used_bytes_peak()
    })
}

#[test]
fn a_tight_appender_lets_its_buffers_be_written() {
    // An appender that never awaits anything else must still hand each
    // buffer it fills to the writer at once, instead of filling the whole
    // write-behind bound (32 MiB) with the device idle.
    run(async move {
        let disk = SimDisk::new();
        let budget = WriteBudget::new(1 << 40);
        let log = PartitionLog::open_with(
            disk.storage(),
            PathBuf::from("/tight-0"),
            LogConfig {
                flush: FlushMode::Never,
                ..LogConfig::default()
            },
            BatchCache::new(0),
        )
        .await
        .unwrap();
        log.set_write_budget(budget.clone());
        for n in 0..48u64 {
            log.append(batch(n, 1, 1_000, 1 << 20)).await.unwrap();
        }
        let peak = budget.used_bytes_peak();
        assert!(peak <= 4 << 20, "{peak} bytes waited for the writer");
        log.close().await.unwrap();
    });
}

#[test]
fn write_budget_caps_unwritten_bytes_per_shard() {
    // Without a shard budget each log holds up to its own bound (32 MiB,
    // soft by one call) of bytes not yet handed to the disk...
    let unbounded = write_behind_peak(1 << 40, 2);
    assert!(
        unbounded > 2 * (32 << 20),
        "peak {unbounded} without a budget"
    );
    // ...and with one, each log over budget waits for its own full buffers:
    // the sum stays within the budget plus, per log, one partial 1 MiB
    // buffer and one call (a batch of 3 MiB of payload and its headers):
    // the bound write_budget.rs promises.
    let budget = 4 << 20;
    let bounded = write_behind_peak(budget, 2);
    let call = batch(0, 1, 1_000, 3 << 20).len() as u64;
    let bound = budget + 2 * ((1 << 20) + call);
    assert!(
        bounded <= bound,
        "peak {bounded} over the bound {bound} with a budget of {budget}"
    );
}

/// `to` as a path relative to the current directory.
fn relative_to_cwd(to: &std::path::Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let common = cwd
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in common..cwd.components().count() {
        rel.push("..");
    }
    rel.extend(to.components().skip(common));
    rel
}

#[test]
fn a_log_under_a_relative_path_syncs_its_directory() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = relative_to_cwd(&dir.path().join("rel-0"));
    assert!(path.is_relative());
    run(async move {
        let log = PartitionLog::open(path, small_cfg(FlushMode::Batch), BatchCache::new(0))
            .await
            .unwrap();
        // The first append creates a segment and syncs the directory.
        log.append(batch(1, 1, 1_000, 10)).await.unwrap();
        assert!(!log.is_poisoned());
        log.close().await.unwrap();
    });
}

#[test]
fn delete_segments_below_keeps_the_segment_holding_the_offset() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("offsets-0");
    run(async move {
        let cache = BatchCache::new(16 << 10);
        let log = PartitionLog::open(path.clone(), small_cfg(FlushMode::Batch), cache.clone())
            .await
            .unwrap();
        let mut bases = Vec::new();
        for i in 0..120u64 {
            bases.push(
                log.append(batch(i, 1, 1000, 2000))
                    .await
                    .unwrap()
                    .base_offset,
            );
        }
        let segments = log.segment_count();
        assert!(segments > 3, "segments rolled");
        // Nothing below offset 0; a mid offset keeps the segment holding it.
        assert_eq!(log.delete_segments_below(0).await.unwrap(), 0);
        let mid = bases[70];
        let deleted = log.delete_segments_below(mid).await.unwrap();
        assert!(deleted >= 1);
        assert_eq!(log.segment_count(), segments - deleted as usize);
        let start = log.log_start_offset();
        assert!(start <= mid && start > 0, "log start {start}, offset {mid}");
        let kept = read_all(&*log, start, 1 << 20).await;
        assert_eq!(kept.first().unwrap().0.base_offset, start);
        assert_eq!(id_of(&kept.last().unwrap().1), 119);
        // Cold data can be read into memory instead of as a file range.
        let r = log.read_in_memory(start, 1).await.unwrap();
        assert!(matches!(r.chunks[0], ReadChunk::Memory(_)));
        assert_eq!(split(&chunk_bytes(&r.chunks[0]))[0].0.base_offset, start);
        // The active segment is never deleted, whatever the offset.
        log.delete_segments_below(i64::MAX).await.unwrap();
        assert_eq!(log.segment_count(), 1);
        log.close().await.unwrap();
        let log = PartitionLog::open(path, small_cfg(FlushMode::Batch), cache)
            .await
            .unwrap();
        assert_eq!(log.log_end_offset(), bases[119] + 1);
        assert!(log.log_start_offset() > start);
    });
}
