//! Uncompressed record batches (magic 2) with whole records: built and read
//! by the broker for its own internal topics (committed offsets and group
//! metadata). Client batches never go through here: the produce and fetch
//! paths keep record bytes opaque. The format itself is [`crate::batch`]'s.

use bytes::BytesMut;

use crate::batch::{BatchBuilder, BatchError, Batches, ProducerFields, Records, BATCH_HEADER_LEN};
use crate::DecodeError;

/// Builds one uncompressed batch of keyed records.
pub struct BatchWriter {
    batch: BatchBuilder,
    timestamp_ms: i64,
}

impl BatchWriter {
    /// All records of the batch carry `timestamp_ms`.
    pub fn new(timestamp_ms: i64) -> BatchWriter {
        BatchWriter {
            batch: BatchBuilder::new(256 - BATCH_HEADER_LEN),
            timestamp_ms,
        }
    }

    pub fn count(&self) -> i32 {
        self.batch.count()
    }

    /// Bytes the batch takes so far.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Appends a record; a `None` value is a tombstone.
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.batch.push(self.timestamp_ms, Some(key), value);
    }

    /// The finished batch (baseOffset 0: the log assigns offsets).
    pub fn finish(self) -> BytesMut {
        self.batch.finish(ProducerFields::NONE)
    }
}

/// One record read back: its absolute offset, key and value (`None` for a
/// tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Calls `f` for every record of every whole batch in `buf`, in order, and
/// returns the bytes consumed (a partial batch at the end is left).
/// Compressed batches are refused: the broker writes its internal topics
/// uncompressed. The CRC is checked.
pub fn for_each_record<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(Record<'a>),
) -> Result<usize, DecodeError> {
    let mut batches = Batches::new(buf);
    for batch in batches.by_ref() {
        let (h, bytes) = batch.map_err(decode_error)?;
        h.verify_crc(bytes).map_err(decode_error)?;
        if h.compression() != 0 {
            return Err(DecodeError::Invalid {
                what: "compression of an internal batch",
                value: i64::from(h.compression()),
            });
        }
        for rec in Records::new(&bytes[BATCH_HEADER_LEN..], h.records_count) {
            let rec = rec?;
            f(Record {
                offset: h.base_offset + rec.offset_delta,
                timestamp_ms: h.base_timestamp + rec.timestamp_delta,
                key: rec.key,
                value: rec.value,
            });
        }
    }
    Ok(batches.consumed())
}

/// The errors [`for_each_record`] has always given for a bad header.
fn decode_error(e: BatchError) -> DecodeError {
    match e {
        BatchError::LengthTooSmall(len) => DecodeError::Invalid {
            what: "batch length",
            value: i64::from(len),
        },
        BatchError::Magic(magic) => DecodeError::Invalid {
            what: "magic",
            value: i64::from(magic),
        },
        BatchError::Crc { .. } => DecodeError::Malformed("record batch CRC mismatch".into()),
        other => DecodeError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn records_of(buf: &[u8]) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let used = for_each_record(buf, |r| {
            out.push((
                r.offset,
                r.key.unwrap().to_vec(),
                r.value.map(<[u8]>::to_vec),
            ))
        })
        .unwrap();
        assert_eq!(used, buf.len());
        out
    }

    #[test]
    fn tombstones_and_offsets_round_trip() {
        let mut w = BatchWriter::new(1_700_000_000_000);
        w.push(b"k1", Some(b"v1"));
        w.push(b"k2", None);
        let mut b = w.finish();
        // The log writes baseOffset in place (outside the CRC).
        b[0..8].copy_from_slice(&40i64.to_be_bytes());
        assert_eq!(
            records_of(&b),
            vec![
                (40, b"k1".to_vec(), Some(b"v1".to_vec())),
                (41, b"k2".to_vec(), None)
            ]
        );
    }

    #[test]
    fn corruption_and_partial_batches() {
        let mut w = BatchWriter::new(5);
        w.push(b"k", Some(b"v"));
        let b = w.finish();
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(for_each_record(&bad, |_| {}).is_err());
        // A partial second batch is left for the next read.
        let mut two = b.to_vec();
        two.extend_from_slice(&b[..20]);
        assert_eq!(for_each_record(&two, |_| {}).unwrap(), b.len());
    }

    proptest! {
        #[test]
        fn any_records_round_trip(recs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..40),
             proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300))), 1..30)) {
            let mut w = BatchWriter::new(7);
            for (k, v) in &recs {
                w.push(k, v.as_deref());
            }
            let b = w.finish();
            let got = records_of(&b);
            prop_assert_eq!(got.len(), recs.len());
            for (i, ((o, k, v), (wk, wv))) in got.iter().zip(&recs).enumerate() {
                prop_assert_eq!(*o, i as i64);
                prop_assert_eq!(k, wk);
                prop_assert_eq!(v, wv);
            }
        }

        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = for_each_record(&buf, |_| {});
        }
    }
}
