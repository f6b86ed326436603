//! Record batch (magic 2) header: parsing and validation without decoding
//! records.

use crate::error::AppendError;

/// Length of the fixed v2 batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// baseOffset (8) + batchLength (4): the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Where the CRC-32C coverage starts (attributes).
const CRC_START: usize = 21;
const MAGIC_V2: i8 = 2;

/// The fixed 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the fixed header at the start of `buf`; checks only the magic
    /// and that the length field can describe a batch.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, AppendError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(AppendError::Corrupt(format!(
                "{} bytes is shorter than a batch header",
                buf.len()
            )));
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_i32(buf, 17) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        };
        if h.magic != MAGIC_V2 {
            return Err(AppendError::Corrupt(format!(
                "unsupported magic {}",
                h.magic
            )));
        }
        if (h.batch_length as i64) < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(AppendError::Corrupt(format!(
                "batch length {} too small",
                h.batch_length
            )));
        }
        Ok(h)
    }

    /// Bytes of the whole batch, header included.
    pub fn total_len(&self) -> u64 {
        LOG_OVERHEAD as u64 + self.batch_length.max(0) as u64
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Checks the parts that need the whole batch: record count against
    /// lastOffsetDelta and the CRC-32C. `batch` is exactly this batch.
    pub fn validate(&self, batch: &[u8]) -> Result<(), AppendError> {
        if batch.len() as u64 != self.total_len() {
            return Err(AppendError::Corrupt(
                "batch length does not match its buffer".into(),
            ));
        }
        if self.records_count <= 0 || self.last_offset_delta != self.records_count - 1 {
            return Err(AppendError::Corrupt(format!(
                "record count {} does not match lastOffsetDelta {}",
                self.records_count, self.last_offset_delta
            )));
        }
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        if crc != self.crc {
            return Err(AppendError::Corrupt(format!(
                "CRC-32C mismatch: header {:#010x}, computed {:#010x}",
                self.crc, crc
            )));
        }
        Ok(())
    }

    /// Whether the batch belongs to an idempotent producer.
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record (wrapping as Kafka does).
    pub fn last_sequence(&self) -> i32 {
        let s = self.base_sequence as i64 + self.last_offset_delta as i64;
        if s > i32::MAX as i64 {
            (s - i32::MAX as i64 - 1) as i32
        } else {
            s as i32
        }
    }
}

/// Rewrites baseOffset in place (outside the CRC coverage).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
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
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
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
