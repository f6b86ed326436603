//! Shared helpers for the criterion benchmarks in `benches/`.

use bytes::BytesMut;
use spindle_engine::batch::build_test_batch;
use spindle_engine::{BatchCache, LogConfig, PartitionLog};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Runs a future on one glommio executor sized for the 8 MiB memlock limit.
pub fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("glommio executor")
        .run(f)
}

/// Where benchmark data goes: `SPINDLE_BENCH_DIR`, else a directory under
/// the target dir (a real filesystem: O_DIRECT fails on tmpfs).
pub fn bench_root() -> PathBuf {
    let p = std::env::var_os("SPINDLE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    std::fs::create_dir_all(&p).expect("bench dir");
    p
}

/// A fresh scratch directory, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(bench_root()).expect("scratch dir")
}

/// A valid batch of about `bytes` bytes with 1 KiB records' worth of count.
pub fn batch_template(bytes: usize) -> Vec<u8> {
    let payload = vec![0x5au8; bytes.saturating_sub(61)];
    let count = (bytes / 1024).max(1) as i32;
    build_test_batch(count, 1_700_000_000_000, &payload)
}

pub fn bytes_mut(template: &[u8]) -> BytesMut {
    BytesMut::from(template)
}

pub async fn open(dir: &Path, cfg: LogConfig, cache_bytes: u64) -> Rc<PartitionLog> {
    PartitionLog::open(dir.join("bench-0"), cfg, BatchCache::new(cache_bytes))
        .await
        .expect("open log")
}
