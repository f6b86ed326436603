//! Engine benchmarks: append throughput per batch size and flush mode,
//! group commit with concurrent appenders, tail-cache and cold reads,
//! recovery scan speed. Data goes to a real filesystem (see
//! `spindle_bench::bench_root`). Sizes are kept small so the whole set runs
//! in a few minutes on two cores.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spindle_bench::{batch_template, bytes_mut, open, run, scratch};
use spindle_engine::{FlushMode, LogConfig, PartitionLog, ReadChunk};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn cfg(flush: FlushMode) -> LogConfig {
    LogConfig {
        flush,
        segment_bytes_max: 256 << 20,
        ..LogConfig::default()
    }
}

/// Time of `iters` appends of one batch size on a fresh log, plus the final
/// flush (so `never` is charged for getting its bytes to disk too). Copying
/// the template into a fresh buffer (the network's job) is not timed.
fn append_run(size: usize, flush: FlushMode, iters: u64) -> Duration {
    let template = batch_template(size);
    let dir = scratch();
    run(async move {
        let log = open(dir.path(), cfg(flush), 64 << 20).await;
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let b = bytes_mut(&template);
            let t = Instant::now();
            log.append(b).await.expect("append");
            total += t.elapsed();
        }
        let t = Instant::now();
        log.flush().await.expect("flush");
        total += t.elapsed();
        log.delete().await.expect("delete");
        total
    })
}

fn append_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for size in [KIB, 16 * KIB, MIB] {
        g.throughput(Throughput::Bytes(size as u64));
        for flush in ["batch", "interval:10", "never"] {
            let mode: FlushMode = flush.parse().expect("mode");
            let id = BenchmarkId::new(flush, format!("{}KiB", size / KIB));
            g.bench_function(id, |b| b.iter_custom(|iters| append_run(size, mode, iters)));
        }
    }
    g.finish();
}

/// flush=batch, 16 KiB batches from 16 concurrent appenders (group commit).
fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(16 * KIB as u64));
    g.bench_function("batch/16KiB/16-appenders", |b| {
        b.iter_custom(|iters| {
            let template = batch_template(16 * KIB);
            let dir = scratch();
            run(async move {
                let log = open(dir.path(), cfg(FlushMode::Batch), 64 << 20).await;
                let per = iters.div_ceil(16);
                let t = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..16 {
                    let (log, template) = (log.clone(), template.clone());
                    tasks.push(glommio::spawn_local(async move {
                        for _ in 0..per {
                            log.append(bytes_mut(&template)).await.expect("append");
                        }
                    }));
                }
                for task in tasks {
                    task.await;
                }
                let e = t.elapsed();
                log.delete().await.expect("delete");
                // `per * 16` appends ran; scale to the `iters` asked for.
                e.mul_f64(iters as f64 / (per * 16) as f64)
            })
        })
    });
    g.finish();
}

/// Reads of 1 MiB from a 64 MiB log of 16 KiB batches: from the tail
/// cache, and cold (file ranges, then read with pread as sendfile would).
fn reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(MIB as u64));
    for (name, cache) in [("tail-cache", 128u64 << 20), ("cold-file-range", 0)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let template = batch_template(16 * KIB);
                let dir = scratch();
                run(async move {
                    let log = open(dir.path(), cfg(FlushMode::Never), cache).await;
                    for _ in 0..(64 * MIB / (16 * KIB)) {
                        log.append(bytes_mut(&template)).await.expect("append");
                    }
                    log.flush().await.expect("flush");
                    let end = log.log_end_offset();
                    let per_batch = (16 * KIB / 1024) as i64;
                    let mut buf = vec![0u8; 2 * MIB];
                    let t = Instant::now();
                    let mut offset = 0;
                    for _ in 0..iters {
                        let r = log.read(offset, MIB as u32).await.expect("read");
                        for ch in &r.chunks {
                            if let ReadChunk::File(f) = ch {
                                f.file
                                    .read_exact_at(&mut buf[..f.len as usize], f.position)
                                    .expect("pread");
                            }
                        }
                        offset = (offset + 64 * per_batch) % (end - 64 * per_batch);
                    }
                    let e = t.elapsed();
                    log.delete().await.expect("delete");
                    e
                })
            })
        });
    }
    g.finish();
}

/// Recovery after an unclean shutdown: the open scans and CRC-checks a
/// 256 MiB segment of 16 KiB batches.
fn recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(4));
    let data = 256 * MIB;
    g.throughput(Throughput::Bytes(data as u64));
    let dir = scratch();
    let path = dir.path().to_path_buf();
    run(async {
        let log = open(&path, cfg(FlushMode::Never), 0).await;
        let template = batch_template(16 * KIB);
        for _ in 0..data / (16 * KIB) {
            log.append(bytes_mut(&template)).await.expect("append");
        }
        log.flush().await.expect("flush");
        // Dropped without close: no clean-shutdown marker.
    });
    g.bench_function("scan/256MiB", |b| {
        b.iter_custom(|iters| {
            let path = path.clone();
            run(async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let log: std::rc::Rc<PartitionLog> =
                        open(&path, cfg(FlushMode::Never), 0).await;
                    total += t.elapsed();
                    assert!(log.size_bytes() >= data as u64);
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, append_throughput, group_commit, reads, recovery);
criterion_main!(benches);
