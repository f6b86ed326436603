//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use spindle_engine::batch::{build_test_batch, build_test_batch_idempotent};
use spindle_engine::{BatchHeader, PartitionLog, ReadChunk, Storage};
use std::future::Future;
use std::os::unix::fs::FileExt;

/// Runs a future on a glommio executor sized for the 8 MiB memlock limit.
pub fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(f)
}

/// A batch carrying `id` in its payload (so any batch read back can be
/// matched with the one appended), `extra` more payload bytes.
pub fn batch(id: u64, count: i32, ts: i64, extra: usize) -> BytesMut {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend(std::iter::repeat_n((id % 251) as u8, extra));
    BytesMut::from(&build_test_batch(count, ts, &payload)[..])
}

pub fn idem_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> BytesMut {
    BytesMut::from(&build_test_batch_idempotent(count, 1, b"idem", pid, epoch, seq)[..])
}

pub fn chunk_bytes(c: &ReadChunk) -> Bytes {
    match c {
        ReadChunk::Memory(b) => b.clone(),
        ReadChunk::File(r) => {
            let mut v = vec![0u8; r.len as usize];
            r.file.read_exact_at(&mut v, r.position).expect("pread");
            Bytes::from(v)
        }
    }
}

/// Splits concatenated batches.
pub fn split(b: &Bytes) -> Vec<(BatchHeader, Bytes)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let h = BatchHeader::parse(&b[pos..]).expect("header");
        let end = pos + h.total_len() as usize;
        h.validate(&b[pos..end]).expect("valid batch");
        out.push((h, b.slice(pos..end)));
        pos = end;
    }
    out
}

/// Every batch from `from` to the high watermark, checking contiguity.
pub async fn read_all<S: Storage>(
    log: &PartitionLog<S>,
    from: i64,
    max_bytes: u32,
) -> Vec<(BatchHeader, Bytes)> {
    let mut out: Vec<(BatchHeader, Bytes)> = Vec::new();
    let mut next = from;
    let hw = log.high_watermark();
    let mut guard = 0;
    while next < hw {
        guard += 1;
        assert!(guard < 1_000_000, "read loop does not progress");
        let r = log.read(next, max_bytes).await.expect("read");
        assert!(!r.chunks.is_empty(), "empty read at {next} below hw {hw}");
        for c in &r.chunks {
            for (h, b) in split(&chunk_bytes(c)) {
                if out.is_empty() {
                    assert!(h.base_offset <= next && h.last_offset() >= next);
                } else {
                    assert_eq!(h.base_offset, next, "offsets not contiguous");
                }
                next = h.last_offset() + 1;
                out.push((h, b));
            }
        }
    }
    out
}

/// The payload id of a batch built by [`batch`].
pub fn id_of(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[61..69].try_into().expect("id"))
}
