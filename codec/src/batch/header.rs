//! The fixed 61-byte header of a v2 batch: parsed and checked without
//! decoding records, written, CRC'd and stamped in place. The broker's
//! produce path runs [`BatchHeader::parse`], [`BatchHeader::validate`] and
//! [`set_base_offset`] on every batch, so they copy nothing and allocate
//! nothing, and are `#[inline]` for callers in other crates.

use super::{
    BatchError, ATTRIBUTES_AT, BASE_OFFSET_AT, BASE_SEQUENCE_AT, BASE_TIMESTAMP_AT,
    BATCH_HEADER_LEN, BATCH_LENGTH_AT, COMPRESSION_MASK, CONTROL_FLAG, CRC_AT,
    LAST_OFFSET_DELTA_AT, LOG_OVERHEAD, MAGIC_AT, MAGIC_V2, MAX_TIMESTAMP_AT,
    PARTITION_LEADER_EPOCH_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORDS_COUNT_AT,
};

/// The fixed header of a v2 record batch.
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

#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the fixed header at the start of `buf`; checks only the magic
    /// and that the length field can describe a batch.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let Some(b) = buf.first_chunk::<BATCH_HEADER_LEN>() else {
            return Err(BatchError::Short(buf.len()));
        };
        let h = BatchHeader {
            base_offset: be_i64(b, BASE_OFFSET_AT),
            batch_length: be_i32(b, BATCH_LENGTH_AT),
            partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_AT),
            magic: b[MAGIC_AT] as i8,
            crc: be_i32(b, CRC_AT) as u32,
            attributes: be_i16(b, ATTRIBUTES_AT),
            last_offset_delta: be_i32(b, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(b, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(b, MAX_TIMESTAMP_AT),
            producer_id: be_i64(b, PRODUCER_ID_AT),
            producer_epoch: be_i16(b, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(b, BASE_SEQUENCE_AT),
            records_count: be_i32(b, RECORDS_COUNT_AT),
        };
        if h.magic != MAGIC_V2 {
            return Err(BatchError::Magic(h.magic));
        }
        if (h.batch_length as i64) < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::LengthTooSmall(h.batch_length));
        }
        Ok(h)
    }

    /// Writes the header into the first [`BATCH_HEADER_LEN`] bytes of
    /// `out`, the crc field as it is in `self` (see [`seal_crc`]).
    pub fn write(&self, out: &mut [u8]) {
        let h = &mut out[..BATCH_HEADER_LEN];
        h[BASE_OFFSET_AT..BATCH_LENGTH_AT].copy_from_slice(&self.base_offset.to_be_bytes());
        h[BATCH_LENGTH_AT..PARTITION_LEADER_EPOCH_AT]
            .copy_from_slice(&self.batch_length.to_be_bytes());
        h[PARTITION_LEADER_EPOCH_AT..MAGIC_AT]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[MAGIC_AT] = self.magic as u8;
        h[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&self.crc.to_be_bytes());
        h[ATTRIBUTES_AT..LAST_OFFSET_DELTA_AT].copy_from_slice(&self.attributes.to_be_bytes());
        h[LAST_OFFSET_DELTA_AT..BASE_TIMESTAMP_AT]
            .copy_from_slice(&self.last_offset_delta.to_be_bytes());
        h[BASE_TIMESTAMP_AT..MAX_TIMESTAMP_AT].copy_from_slice(&self.base_timestamp.to_be_bytes());
        h[MAX_TIMESTAMP_AT..PRODUCER_ID_AT].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[PRODUCER_ID_AT..PRODUCER_EPOCH_AT].copy_from_slice(&self.producer_id.to_be_bytes());
        h[PRODUCER_EPOCH_AT..BASE_SEQUENCE_AT].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[BASE_SEQUENCE_AT..RECORDS_COUNT_AT].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[RECORDS_COUNT_AT..].copy_from_slice(&self.records_count.to_be_bytes());
    }

    /// Bytes of the whole batch, header included.
    #[inline]
    pub fn total_len(&self) -> u64 {
        LOG_OVERHEAD as u64 + self.batch_length.max(0) as u64
    }

    #[inline]
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Checks the parts that need the whole batch: record count against
    /// lastOffsetDelta and the CRC-32C. `batch` is exactly this batch.
    #[inline]
    pub fn validate(&self, batch: &[u8]) -> Result<(), BatchError> {
        if batch.len() as u64 != self.total_len() {
            return Err(BatchError::LengthMismatch);
        }
        if self.records_count <= 0 || self.last_offset_delta != self.records_count - 1 {
            return Err(BatchError::Count {
                records_count: self.records_count,
                last_offset_delta: self.last_offset_delta,
            });
        }
        self.verify_crc(batch)
    }

    /// Checks the CRC-32C alone. `batch` is exactly this batch.
    #[inline]
    pub fn verify_crc(&self, batch: &[u8]) -> Result<(), BatchError> {
        let computed = crc_of(batch);
        if computed != self.crc {
            return Err(BatchError::Crc {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }

    /// Whether the batch belongs to an idempotent producer.
    #[inline]
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record (wrapping as Kafka does).
    #[inline]
    pub fn last_sequence(&self) -> i32 {
        let s = self.base_sequence as i64 + self.last_offset_delta as i64;
        if s > i32::MAX as i64 {
            (s - i32::MAX as i64 - 1) as i32
        } else {
            s as i32
        }
    }

    /// The compression codec's attribute bits (0 = none).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    /// A control batch carries transaction markers, no user records.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

/// The CRC-32C a batch's header should carry: over everything from the
/// attributes to the end. `batch` is exactly one batch.
#[inline]
pub fn crc_of(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Writes the CRC-32C of a finished batch into its header.
pub fn seal_crc(batch: &mut [u8]) {
    let crc = crc_of(batch);
    batch[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites baseOffset in place (outside the CRC coverage).
#[inline]
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_AT..BATCH_LENGTH_AT].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites partitionLeaderEpoch in place (outside the CRC coverage).
#[inline]
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_AT..MAGIC_AT].copy_from_slice(&epoch.to_be_bytes());
}

/// The whole batches at the front of a buffer, in order, each with its
/// parsed header (magic and length checked, not the CRC). A partial batch
/// at the end (a fetch response may cut one off) ends the walk without an
/// error; [`Batches::consumed`] then says where it starts. After an error
/// the walk ends.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Batches<'a> {
        Batches {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Bytes of the whole batches walked so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    fn fail(&mut self, e: BatchError) -> Option<Result<(BatchHeader, &'a [u8]), BatchError>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if self.failed || rest.len() < LOG_OVERHEAD {
            return None;
        }
        let batch_length = be_i32(rest, BATCH_LENGTH_AT);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return self.fail(BatchError::LengthTooSmall(batch_length));
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if rest.len() < total {
            return None;
        }
        let batch = &rest[..total];
        match BatchHeader::parse(batch) {
            Ok(h) => {
                self.pos += total;
                Some(Ok((h, batch)))
            }
            Err(e) => self.fail(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, ProducerFields};
    use proptest::prelude::*;

    fn batch(records: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(64);
        for i in 0..records {
            b.push(1_000 + i as i64, Some(b"k"), Some(b"value"));
        }
        b.finish(ProducerFields::NONE).to_vec()
    }

    #[test]
    fn parse_and_write_round_trip() {
        let b = batch(3);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.total_len(), b.len() as u64);
        h.validate(&b).unwrap();
        let mut again = vec![0u8; BATCH_HEADER_LEN];
        h.write(&mut again);
        assert_eq!(again, b[..BATCH_HEADER_LEN]);
    }

    #[test]
    fn stamping_leaves_the_crc_valid() {
        let mut b = batch(2);
        set_base_offset(&mut b, 77);
        set_partition_leader_epoch(&mut b, 9);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (77, 9));
        h.validate(&b).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            BatchHeader::parse(&b).unwrap().validate(&b),
            Err(BatchError::Crc { .. })
        ));
    }

    #[test]
    fn walk_stops_at_a_partial_batch_and_fails_on_a_bad_one() {
        let one = batch(2);
        let mut buf = one.clone();
        buf.extend_from_slice(&one[..one.len() - 1]);
        let mut walk = Batches::new(&buf);
        assert_eq!(walk.next().unwrap().unwrap().1, &one[..]);
        assert!(walk.next().is_none());
        assert_eq!(walk.consumed(), one.len());
        let mut bad = one.clone();
        bad[MAGIC_AT] = 1;
        let mut walk = Batches::new(&bad);
        assert_eq!(walk.next(), Some(Err(BatchError::Magic(1))));
        assert!(walk.next().is_none());
        let mut short = one;
        short[BATCH_LENGTH_AT..PARTITION_LEADER_EPOCH_AT].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(
            Batches::new(&short).next(),
            Some(Err(BatchError::LengthTooSmall(3)))
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(h) = BatchHeader::parse(&bytes) {
                let len = h.total_len();
                if len <= bytes.len() as u64 {
                    let _ = h.validate(&bytes[..len as usize]);
                }
            }
            for b in Batches::new(&bytes) {
                let _ = b;
            }
        }
    }
}
