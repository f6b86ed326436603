//! Uncompressed record batches (magic 2) with whole records: built and read
//! by the broker for its own internal topics (committed offsets and group
//! metadata). Client batches never go through here: the produce and fetch
//! paths keep record bytes opaque.
//!
//! Layout (Kafka's `DefaultRecordBatch`): baseOffset i64 | batchLength i32 |
//! partitionLeaderEpoch i32 | magic i8 | crc u32 (CRC-32C of everything
//! after it) | attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 |
//! maxTimestamp i64 | producerId i64 | producerEpoch i16 | baseSequence i32
//! | records i32 | records. A record: length varlong | attributes i8 |
//! timestampDelta varlong | offsetDelta varlong | key (varlong length, -1
//! null) | value (same) | headers count varlong.

use bytes::{BufMut, BytesMut};

use crate::wire::Reader;
use crate::DecodeError;

/// Bytes of the batch header before the first record.
pub const BATCH_HEADER_LEN: usize = 61;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// Builds one uncompressed batch of keyed records.
pub struct BatchWriter {
    buf: BytesMut,
    count: i32,
    timestamp_ms: i64,
}

impl BatchWriter {
    /// All records of the batch carry `timestamp_ms`.
    pub fn new(timestamp_ms: i64) -> BatchWriter {
        let mut buf = BytesMut::with_capacity(256);
        buf.resize(BATCH_HEADER_LEN, 0);
        BatchWriter {
            buf,
            count: 0,
            timestamp_ms,
        }
    }

    pub fn count(&self) -> i32 {
        self.count
    }

    /// Bytes the batch takes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a record; a `None` value is a tombstone.
    pub fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        let offset_delta = i64::from(self.count);
        let value_len = value.map_or(-1, |v| v.len() as i64);
        let body_len = 1
            + varlong_len(0)
            + varlong_len(offset_delta)
            + varlong_len(key.len() as i64)
            + key.len()
            + varlong_len(value_len)
            + value.map_or(0, |v| v.len())
            + varlong_len(0);
        put_varlong(&mut self.buf, body_len as i64);
        self.buf.put_u8(0);
        put_varlong(&mut self.buf, 0);
        put_varlong(&mut self.buf, offset_delta);
        put_varlong(&mut self.buf, key.len() as i64);
        self.buf.put_slice(key);
        put_varlong(&mut self.buf, value_len);
        if let Some(v) = value {
            self.buf.put_slice(v);
        }
        put_varlong(&mut self.buf, 0);
        self.count += 1;
    }

    /// The finished batch (baseOffset 0: the log assigns offsets).
    pub fn finish(mut self) -> BytesMut {
        assert!(self.count > 0, "a batch holds at least one record");
        let batch_length = (self.buf.len() - 12) as i32;
        let ts = self.timestamp_ms;
        let h = &mut self.buf[..BATCH_HEADER_LEN];
        h[0..8].copy_from_slice(&0i64.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        h[16] = 2;
        h[21..23].copy_from_slice(&0i16.to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        h[27..35].copy_from_slice(&ts.to_be_bytes());
        h[35..43].copy_from_slice(&ts.to_be_bytes());
        h[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        h[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        h[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES_AT..]);
        self.buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.buf
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
    let mut at = 0usize;
    while buf.len() - at >= 12 {
        let mut r = Reader::new(&buf[at..]);
        let base_offset = r.i64()?;
        let len = r.i32()?;
        if len < (BATCH_HEADER_LEN - 12) as i32 {
            return Err(DecodeError::Invalid {
                what: "batch length",
                value: i64::from(len),
            });
        }
        let total = 12 + len as usize;
        if buf.len() - at < total {
            break;
        }
        let batch = &buf[at..at + total];
        read_batch(base_offset, batch, &mut f)?;
        at += total;
    }
    Ok(at)
}

fn read_batch<'a>(
    base_offset: i64,
    batch: &'a [u8],
    f: &mut impl FnMut(Record<'a>),
) -> Result<(), DecodeError> {
    let mut r = Reader::new(&batch[12..]);
    let _leader_epoch = r.i32()?;
    let magic = r.i8()?;
    if magic != 2 {
        return Err(DecodeError::Invalid {
            what: "magic",
            value: i64::from(magic),
        });
    }
    let crc = r.i32()? as u32;
    if crc32c::crc32c(&batch[ATTRIBUTES_AT..]) != crc {
        return Err(DecodeError::Malformed("record batch CRC mismatch".into()));
    }
    let attributes = r.i16()?;
    if attributes & 0x7 != 0 {
        return Err(DecodeError::Invalid {
            what: "compression of an internal batch",
            value: i64::from(attributes & 0x7),
        });
    }
    let _last_offset_delta = r.i32()?;
    let base_timestamp = r.i64()?;
    let _max_timestamp = r.i64()?;
    r.take(8 + 2 + 4)?;
    let count = r.i32()?;
    for _ in 0..count {
        let len = varlong(&mut r)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Invalid {
            what: "record length",
            value: len,
        })?;
        let mut rec = Reader::new(r.take(len)?);
        let _attributes = rec.i8()?;
        let ts_delta = varlong(&mut rec)?;
        let offset_delta = varlong(&mut rec)?;
        let key = nullable(&mut rec)?;
        let value = nullable(&mut rec)?;
        f(Record {
            offset: base_offset + offset_delta,
            timestamp_ms: base_timestamp + ts_delta,
            key,
            value,
        });
    }
    Ok(())
}

fn nullable<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, DecodeError> {
    let len = varlong(r)?;
    if len == -1 {
        return Ok(None);
    }
    let n = usize::try_from(len).map_err(|_| DecodeError::Invalid {
        what: "record field length",
        value: len,
    })?;
    r.take(n).map(Some)
}

/// Zigzag varlong, at most 10 bytes.
fn varlong(r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = r.take(1)?[0];
        raw |= u64::from(b & 0x7f) << (i * 7);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(DecodeError::Malformed(
        "varlong longer than 10 bytes".into(),
    ))
}

fn put_varlong(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn varlong_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
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
