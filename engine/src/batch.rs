//! The engine's side of the record batch (magic 2). The format is codec's
//! ([`spindle_codec::batch`]: header layout, parse, CRC-32C, baseOffset
//! stamped in place); here are the checks an append runs on every
//! produced batch, with codec's errors mapped to [`AppendError`], and the
//! opaque-payload batches that tests and benchmarks append.

use spindle_codec::batch::{seal_crc, BatchError, MAGIC_V2};
pub use spindle_codec::batch::{
    set_base_offset, set_partition_leader_epoch, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD,
};

use crate::error::AppendError;

impl From<BatchError> for AppendError {
    fn from(e: BatchError) -> AppendError {
        AppendError::Corrupt(e.to_string())
    }
}

/// Splits concatenated batches into (start, header) after validating each
/// fully. Fails on the first bad batch; trailing bytes are an error.
pub fn validate_batches(
    buf: &[u8],
    batch_bytes_max: u64,
) -> Result<Vec<(usize, BatchHeader)>, AppendError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    if buf.is_empty() {
        return Err(AppendError::InvalidRecord("no record batch".into()));
    }
    while pos < buf.len() {
        let h = BatchHeader::parse(&buf[pos..])?;
        let len = h.total_len();
        if len > batch_bytes_max {
            return Err(AppendError::BatchTooLarge {
                size: len,
                max: batch_bytes_max,
            });
        }
        let end = pos as u64 + len;
        if end > buf.len() as u64 {
            return Err(AppendError::Corrupt(format!(
                "batch of {len} bytes at {pos} overruns the {}-byte buffer",
                buf.len()
            )));
        }
        let end = end as usize;
        h.validate(&buf[pos..end])?;
        out.push((pos, h));
        pos = end;
    }
    Ok(out)
}

/// Builds a valid v2 batch with `count` records whose payload is `payload`
/// repeated; for tests, benchmarks and tools. The records section is opaque
/// to the engine, so it holds `payload` as is.
pub fn build_test_batch(count: i32, timestamp: i64, payload: &[u8]) -> Vec<u8> {
    build_test_batch_idempotent(count, timestamp, payload, -1, -1, -1)
}

/// As [`build_test_batch`] with producer id, epoch and base sequence.
pub fn build_test_batch_idempotent(
    count: i32,
    timestamp: i64,
    payload: &[u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    assert!(count >= 1);
    let total = BATCH_HEADER_LEN + payload.len();
    let mut b = Vec::with_capacity(total);
    b.resize(BATCH_HEADER_LEN, 0);
    BatchHeader {
        base_offset: 0,
        batch_length: (total - LOG_OVERHEAD) as i32,
        partition_leader_epoch: 0,
        magic: MAGIC_V2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        records_count: count,
    }
    .write(&mut b);
    b.extend_from_slice(payload);
    seal_crc(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_built_batch() {
        let b = build_test_batch(3, 1234, b"hello");
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp, 1234);
        assert_eq!(h.total_len(), b.len() as u64);
        h.validate(&b).unwrap();
    }

    #[test]
    fn rejects_bad_batches() {
        let good = build_test_batch(2, 1, b"abc");
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            validate_batches(&bad_crc, 1 << 20),
            Err(AppendError::Corrupt(_))
        ));
        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        assert!(matches!(
            validate_batches(&bad_magic, 1 << 20),
            Err(AppendError::Corrupt(_))
        ));
        let mut bad_count = good.clone();
        bad_count[57..61].copy_from_slice(&5i32.to_be_bytes());
        assert!(matches!(
            validate_batches(&bad_count, 1 << 20),
            Err(AppendError::Corrupt(_))
        ));
        assert!(validate_batches(&good[..good.len() - 1], 1 << 20).is_err());
        assert!(validate_batches(&good[..10], 1 << 20).is_err());
        assert!(matches!(
            validate_batches(&good, 10),
            Err(AppendError::BatchTooLarge { .. })
        ));
        assert!(validate_batches(&[], 1 << 20).is_err());
    }

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut b = build_test_batch(1, 1, b"x");
        set_base_offset(&mut b, 77);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 77);
        h.validate(&b).unwrap();
    }

    proptest! {
        #[test]
        fn concatenated_batches_split_back(sizes in proptest::collection::vec((1i32..50, 0usize..300), 1..10)) {
            let mut buf = Vec::new();
            for (count, len) in &sizes {
                buf.extend(build_test_batch(*count, 5, &vec![7u8; *len]));
            }
            let parsed = validate_batches(&buf, 1 << 20).unwrap();
            prop_assert_eq!(parsed.len(), sizes.len());
            for ((_, h), (count, _)) in parsed.iter().zip(&sizes) {
                prop_assert_eq!(h.records_count, *count);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = validate_batches(&bytes, 1 << 20);
        }
    }
}
