//! A batch built record by record: each record is written straight into the
//! batch buffer (no per-record allocation), the header is filled and the
//! CRC computed when it is finished. Compression is the caller's: it hands
//! [`BatchBuilder::finish_compressed`] a function, so the codec (which the
//! engine links) carries no compression library.

use bytes::{BufMut, BytesMut};

use super::header::seal_crc;
use super::{BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};
use crate::wire::{put_varlong, varlong_len};

/// The idempotent producer's fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerFields {
    /// A batch of no idempotent producer.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// Builds one batch. baseOffset is 0 (the log assigns offsets) and
/// partitionLeaderEpoch -1 (the leader stamps it).
#[derive(Debug)]
pub struct BatchBuilder {
    /// Header placeholder + records (uncompressed).
    buf: BytesMut,
    count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    /// Room for `capacity` bytes of records is reserved up front.
    pub fn new(capacity: usize) -> BatchBuilder {
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_LEN + capacity);
        buf.resize(BATCH_HEADER_LEN, 0);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
        }
    }

    pub fn count(&self) -> i32 {
        self.count
    }

    /// Bytes the batch takes so far, uncompressed, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends one record; a `None` value is null (a tombstone).
    pub fn push(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        match value {
            Some(v) => self.push_parts(timestamp_ms, key, &[v]),
            None => self.push_record(timestamp_ms, key, -1, &[]),
        }
    }

    /// Appends one record whose value is `parts` concatenated (a stamp and
    /// a payload, say, without joining them first).
    pub fn push_parts(&mut self, timestamp_ms: i64, key: Option<&[u8]>, parts: &[&[u8]]) {
        let value_len = parts.iter().map(|p| p.len()).sum::<usize>() as i64;
        self.push_record(timestamp_ms, key, value_len, parts);
    }

    /// `value_len` -1 is a null value.
    fn push_record(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value_len: i64,
        parts: &[&[u8]],
    ) {
        if self.count == 0 {
            self.base_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let ts_delta = timestamp_ms - self.base_timestamp_ms;
        let offset_delta = i64::from(self.count);
        let key_len = key.map_or(-1, |k| k.len() as i64);
        let body_len = 1
            + varlong_len(ts_delta)
            + varlong_len(offset_delta)
            + varlong_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + varlong_len(value_len)
            + value_len.max(0) as usize
            + varlong_len(0);
        put_varlong(&mut self.buf, body_len as i64);
        self.buf.put_u8(0); // attributes
        put_varlong(&mut self.buf, ts_delta);
        put_varlong(&mut self.buf, offset_delta);
        put_varlong(&mut self.buf, key_len);
        if let Some(k) = key {
            self.buf.put_slice(k);
        }
        put_varlong(&mut self.buf, value_len);
        for part in parts {
            self.buf.put_slice(part);
        }
        put_varlong(&mut self.buf, 0); // headers
        self.count += 1;
    }

    /// The finished uncompressed batch.
    pub fn finish(mut self, producer: ProducerFields) -> BytesMut {
        let header = self.header(0, producer, self.buf.len());
        header.write(&mut self.buf);
        seal_crc(&mut self.buf);
        self.buf
    }

    /// The finished batch with its records compressed: `compress` appends
    /// the compressed form of its input to its output, and `compression`
    /// is the codec's attributes bits (lz4 3, zstd 4, ...).
    pub fn finish_compressed<E>(
        self,
        compression: i16,
        producer: ProducerFields,
        compress: impl FnOnce(&[u8], &mut BytesMut) -> Result<(), E>,
    ) -> Result<BytesMut, E> {
        let mut out = BytesMut::with_capacity(self.buf.len() / 2 + BATCH_HEADER_LEN);
        out.resize(BATCH_HEADER_LEN, 0);
        compress(&self.buf[BATCH_HEADER_LEN..], &mut out)?;
        let header = self.header(compression, producer, out.len());
        header.write(&mut out);
        seal_crc(&mut out);
        Ok(out)
    }

    fn header(&self, attributes: i16, producer: ProducerFields, total_len: usize) -> BatchHeader {
        assert!(self.count > 0, "a batch holds at least one record");
        BatchHeader {
            base_offset: 0,
            batch_length: (total_len - LOG_OVERHEAD) as i32,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes,
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp_ms,
            max_timestamp: self.max_timestamp_ms,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            base_sequence: producer.base_sequence,
            records_count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Batches, Records};
    use proptest::prelude::*;

    type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn read_back(batch: &[u8]) -> Vec<Rec> {
        let mut out = Vec::new();
        for b in Batches::new(batch) {
            let (h, bytes) = b.unwrap();
            h.validate(bytes).unwrap();
            for r in Records::new(&bytes[BATCH_HEADER_LEN..], h.records_count) {
                let r = r.unwrap();
                out.push((
                    h.base_timestamp + r.timestamp_delta,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                ));
            }
        }
        out
    }

    #[test]
    fn value_parts_are_concatenated_and_timestamps_kept() {
        let mut b = BatchBuilder::new(0);
        b.push_parts(50, None, &[b"ab", b"", b"cd"]);
        b.push(40, Some(b"k"), None);
        let fields = ProducerFields {
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 11,
        };
        let batch = b.finish(fields);
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!((h.base_timestamp, h.max_timestamp), (50, 50));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 2, 11)
        );
        assert_eq!(
            read_back(&batch),
            vec![
                (50, None, Some(b"abcd".to_vec())),
                (40, Some(b"k".to_vec()), None)
            ]
        );
    }

    #[test]
    fn compressed_records_are_the_callers() {
        let mut b = BatchBuilder::new(0);
        b.push(1, None, Some(b"xyz"));
        let batch = b
            .finish_compressed(4, ProducerFields::NONE, |src, out| {
                out.put_slice(b"Z");
                out.put_slice(src);
                Ok::<(), ()>(())
            })
            .unwrap();
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!(h.compression(), 4);
        h.validate(&batch).unwrap();
        assert_eq!(batch[BATCH_HEADER_LEN], b'Z');
    }

    proptest! {
        #[test]
        fn any_records_round_trip(recs in proptest::collection::vec(
            (0i64..1 << 40,
             proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
             proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300))), 1..30)) {
            let mut b = BatchBuilder::new(0);
            for (ts, k, v) in &recs {
                b.push(*ts, k.as_deref(), v.as_deref());
            }
            prop_assert_eq!(read_back(&b.finish(ProducerFields::NONE)), recs);
        }
    }
}
