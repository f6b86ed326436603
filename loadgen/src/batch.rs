//! loadgen's record batches, over codec's format (`spindle_codec::batch`):
//! the compression codecs (lz4 and zstd live here, not in the codec, which
//! the engine links too), the producer's batch builder with them, and the
//! consumer's walk over fetched batches, which counts records and reads
//! the send stamps end-to-end latency needs without materialising records.

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};
use spindle_codec::batch::{self as format, Batches, ProducerFields, Records, BATCH_HEADER_LEN};
use spindle_codec::DecodeError;

use crate::payload::parse_stamp;

/// A decompressed batch larger than this is refused (a peer cannot make
/// loadgen allocate without bound).
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "none" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// From a batch header's compression bits.
    fn from_bits(bits: i16) -> Compression {
        match bits {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("record batch magic {0} is not 2")]
    Magic(i8),
    #[error("record batch CRC mismatch: stored {stored:#x}, computed {computed:#x}")]
    Crc { stored: u32, computed: u32 },
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("record batch: {0}")]
    Header(format::BatchError),
    #[error("malformed record: {0}")]
    Record(#[from] DecodeError),
    #[error("compression {0:?} is not supported by loadgen")]
    UnsupportedCompression(Compression),
    #[error("compression failed: {0}")]
    Codec(#[from] std::io::Error),
}

impl From<format::BatchError> for BatchError {
    fn from(e: format::BatchError) -> BatchError {
        match e {
            format::BatchError::Magic(m) => BatchError::Magic(m),
            format::BatchError::Crc { stored, computed } => BatchError::Crc { stored, computed },
            format::BatchError::LengthTooSmall(_) => {
                BatchError::Malformed("batch length below the header size")
            }
            other => BatchError::Header(other),
        }
    }
}

/// Identity written into every batch when idempotence is on.
#[derive(Debug, Clone, Copy)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Builds one batch for one partition: records go straight into codec's
/// builder (whose count and length it shows), compressed (if asked) when
/// the batch is finished.
pub struct BatchBuilder {
    compression: Compression,
    batch: format::BatchBuilder,
}

impl std::ops::Deref for BatchBuilder {
    type Target = format::BatchBuilder;

    fn deref(&self) -> &format::BatchBuilder {
        &self.batch
    }
}

impl BatchBuilder {
    pub fn new(compression: Compression, capacity: usize) -> BatchBuilder {
        BatchBuilder {
            compression,
            batch: format::BatchBuilder::new(capacity),
        }
    }

    /// Appends one record. `value_head` and `value_tail` are concatenated to
    /// form the value (stamp + payload without an intermediate copy).
    pub fn append(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value_head: &[u8],
        value_tail: &[u8],
    ) {
        self.batch
            .push_parts(timestamp_ms, key, &[value_head, value_tail]);
    }

    /// Fills the header, compresses if asked and returns the finished batch
    /// bytes. `base_sequence` is -1 without idempotence.
    pub fn finish(
        self,
        producer: Option<ProducerIdentity>,
        base_sequence: i32,
    ) -> Result<BytesMut, BatchError> {
        let (producer_id, producer_epoch) =
            producer.map_or((-1, -1), |p| (p.producer_id, p.producer_epoch));
        let fields = ProducerFields {
            producer_id,
            producer_epoch,
            base_sequence,
        };
        match self.compression {
            Compression::None => Ok(self.batch.finish(fields)),
            c => self
                .batch
                .finish_compressed(c.attribute(), fields, |src, out| compress(c, src, out)),
        }
    }
}

fn compress(c: Compression, src: &[u8], out: &mut BytesMut) -> Result<(), BatchError> {
    match c {
        Compression::Lz4 => {
            let mut enc = lz4::EncoderBuilder::new().level(1).build(out.writer())?;
            enc.write_all(src)?;
            let (_, r) = enc.finish();
            r?;
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(out.writer(), 1)?;
            enc.write_all(src)?;
            enc.finish()?;
        }
        Compression::None => out.put_slice(src),
        other => return Err(BatchError::UnsupportedCompression(other)),
    }
    Ok(())
}

fn decompress(c: Compression, src: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    match c {
        Compression::Lz4 => {
            lz4::Decoder::new(src)?
                .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::Decoder::new(src)?
                .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
                .read_to_end(&mut out)?;
        }
        other => return Err(BatchError::UnsupportedCompression(other)),
    }
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(BatchError::Malformed("decompressed batch above the limit"));
    }
    Ok(out)
}

/// What a consumer learns from one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub records: i32,
    /// Bytes of the whole batch on the wire.
    pub size: usize,
}

/// Walks the complete batches in a fetched `records` blob. A partial batch
/// at the end (brokers may cut one off at max_bytes) is left out.
/// `on_stamp` gets (batch index, record index in the batch, run id, stamp)
/// of every stamped record when `want_stamps` is set; otherwise records
/// are only counted.
pub fn walk_batches(
    data: &[u8],
    want_stamps: bool,
    verify_crc: bool,
    mut on_batch: impl FnMut(BatchInfo),
    mut on_stamp: impl FnMut(usize, i32, u32, u64),
) -> Result<(), BatchError> {
    for (batch_index, b) in Batches::new(data).enumerate() {
        let (h, batch) = b?;
        if verify_crc {
            h.verify_crc(batch)?;
        }
        let control = h.is_control();
        on_batch(BatchInfo {
            base_offset: h.base_offset,
            last_offset_delta: h.last_offset_delta,
            records: if control { 0 } else { h.records_count },
            size: batch.len(),
        });
        if want_stamps && !control {
            let body = &batch[BATCH_HEADER_LEN..];
            let mut f = |i: i32, run: u32, stamp: u64| on_stamp(batch_index, i, run, stamp);
            match Compression::from_bits(h.compression()) {
                Compression::None => read_stamps(body, h.records_count, &mut f)?,
                c => read_stamps(&decompress(c, body)?, h.records_count, &mut f)?,
            }
        }
    }
    Ok(())
}

fn read_stamps(
    body: &[u8],
    records: i32,
    on_stamp: &mut impl FnMut(i32, u32, u64),
) -> Result<(), BatchError> {
    for (i, rec) in Records::new(body, records).enumerate() {
        if let Some((run, stamp)) = rec?.value.and_then(parse_stamp) {
            on_stamp(i as i32, run, stamp);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{write_stamp, STAMP_LEN};
    use bytes::Bytes;
    use spindle_codec::kafka_protocol::records::{Compression as KCompression, RecordBatchDecoder};

    fn build(c: Compression, n: usize, producer: Option<ProducerIdentity>) -> Vec<u8> {
        let mut b = BatchBuilder::new(c, 4096);
        for i in 0..n {
            let mut stamp = [0u8; STAMP_LEN];
            write_stamp(&mut stamp, 7, 1000 + i as u64);
            let key = format!("k{i}");
            let key = if i % 2 == 0 {
                Some(key.as_bytes())
            } else {
                None
            };
            b.append(
                1_700_000_000_000 + i as i64,
                key,
                &stamp,
                b"payload-bytes-payload-bytes",
            );
        }
        b.finish(producer, if producer.is_some() { 42 } else { -1 })
            .unwrap()
            .to_vec()
    }

    /// kafka_protocol's own decoder (features without compression) reads
    /// an uncompressed batch: CRC, counts, keys, values and producer fields.
    #[test]
    fn uncompressed_batch_decodes_with_kafka_protocol() {
        let pid = ProducerIdentity {
            producer_id: 99,
            producer_epoch: 3,
        };
        let raw = build(Compression::None, 10, Some(pid));
        let mut bytes = Bytes::from(raw.clone());
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.compression, KCompression::None);
        assert_eq!(set.records.len(), 10);
        for (i, r) in set.records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.sequence, 42 + i as i32);
            assert_eq!(r.producer_id, 99);
            assert_eq!(r.producer_epoch, 3);
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            let v = r.value.as_ref().unwrap();
            assert_eq!(parse_stamp(v), Some((7, 1000 + i as u64)));
            assert_eq!(&v[STAMP_LEN..], b"payload-bytes-payload-bytes");
            if i % 2 == 0 {
                assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
            } else {
                assert!(r.key.is_none());
            }
        }
    }

    #[test]
    fn crc_is_checked_and_corruption_found() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let raw = build(c, 5, None);
            let mut seen = 0;
            walk_batches(&raw, true, true, |_| {}, |_, _, _, _| seen += 1).unwrap();
            assert_eq!(seen, 5, "{c:?}");
            let mut bad = raw.clone();
            let last = bad.len() - 3;
            bad[last] ^= 0xff;
            assert!(matches!(
                walk_batches(&bad, false, true, |_| {}, |_, _, _, _| {}),
                Err(BatchError::Crc { .. })
            ));
        }
    }

    #[test]
    fn compressed_batches_round_trip_stamps() {
        for c in [Compression::Lz4, Compression::Zstd] {
            let raw = build(c, 100, None);
            let mut stamps = Vec::new();
            let mut infos = Vec::new();
            walk_batches(
                &raw,
                true,
                true,
                |i| infos.push(i),
                |_, _, r, s| stamps.push((r, s)),
            )
            .unwrap();
            assert_eq!(infos.len(), 1);
            assert_eq!(infos[0].records, 100);
            assert_eq!(infos[0].last_offset_delta, 99);
            assert_eq!(infos[0].size, raw.len());
            let want: Vec<_> = (0..100).map(|i| (7, 1000 + i)).collect();
            assert_eq!(stamps, want);
        }
    }

    #[test]
    fn partial_trailing_batch_is_skipped_and_garbage_refused() {
        let a = build(Compression::None, 3, None);
        let mut two = a.clone();
        two.extend_from_slice(&a[..a.len() - 5]);
        let mut n = 0;
        walk_batches(&two, false, true, |i| n += i.records, |_, _, _, _| {}).unwrap();
        assert_eq!(n, 3);
        let mut garbage = a.clone();
        garbage[16] = 1;
        assert!(matches!(
            walk_batches(&garbage, false, false, |_| {}, |_, _, _, _| {}),
            Err(BatchError::Magic(1))
        ));
        let mut short = a;
        short[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert!(walk_batches(&short, false, false, |_| {}, |_, _, _, _| {}).is_err());
    }
}
