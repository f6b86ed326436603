//! What partition replication asks of the engine, on the simulated disk
//! and the real one: reads below a bound.

mod common;

use common::*;
use spindle_engine::storage::SimDisk;
use spindle_engine::{BatchCache, FlushMode, LogConfig, PartitionLog, ReadError};
use std::path::PathBuf;

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
