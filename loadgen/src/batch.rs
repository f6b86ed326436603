//! Record batches (magic 2) built and read by loadgen itself: the producer
//! writes records straight into the batch buffer (no per-record allocation),
//! and the consumer walks fetched batches without materialising records, only
//! to count them and to read the send stamp that end-to-end latency needs.
//!
//! Layout (Kafka's `DefaultRecordBatch`):
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 |
//! crc u32 (CRC-32C of everything after it) | attributes i16 |
//! lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | records i32 |
//! records...

use std::io::{Read, Write};

/// Bytes of the batch header before the first record.
pub const BATCH_HEADER_LEN: usize = 61;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const RECORD_COUNT_OFFSET: usize = 57;
/// A decompressed batch larger than this is refused (a peer cannot make
/// loadgen allocate without bound).
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// The value of a stamped record starts with this tag, then the run id and
/// the send stamp, so e2e latency is only taken from records of this run.
pub const STAMP_TAG: u32 = 0x5350_4e44; // "SPND"
/// Bytes a stamp takes at the start of a record value.
pub const STAMP_LEN: usize = 16;

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

    fn from_attributes(attributes: i16) -> Compression {
        match attributes & 0x7 {
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
    #[error("record batch truncated")]
    Truncated,
    #[error("record batch magic {0} is not 2")]
    Magic(i8),
    #[error("record batch CRC mismatch: stored {stored:#x}, computed {computed:#x}")]
    Crc { stored: u32, computed: u32 },
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("compression {0:?} is not supported by loadgen")]
    UnsupportedCompression(Compression),
    #[error("compression failed: {0}")]
    Codec(#[from] std::io::Error),
}

/// Identity written into every batch when idempotence is on.
#[derive(Debug, Clone, Copy)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Builds one batch for one partition. Records are appended in place; the
/// header is filled by [`BatchBuilder::finish`].
pub struct BatchBuilder {
    compression: Compression,
    /// Header placeholder + records (uncompressed).
    buf: Vec<u8>,
    count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    pub fn new(compression: Compression, capacity: usize) -> BatchBuilder {
        let mut buf = Vec::with_capacity(BATCH_HEADER_LEN + capacity);
        buf.resize(BATCH_HEADER_LEN, 0);
        BatchBuilder {
            compression,
            buf,
            count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
        }
    }

    pub fn count(&self) -> i32 {
        self.count
    }

    /// Bytes the batch holds so far (uncompressed).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
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
        if self.count == 0 {
            self.base_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let ts_delta = timestamp_ms - self.base_timestamp_ms;
        let offset_delta = i64::from(self.count);
        let key_len = key.map_or(-1, |k| k.len() as i64);
        let value_len = (value_head.len() + value_tail.len()) as i64;
        let body_len = 1
            + varlong_len(ts_delta)
            + varlong_len(offset_delta)
            + varlong_len(key_len)
            + key.map_or(0, |k| k.len())
            + varlong_len(value_len)
            + value_len as usize
            + 1;
        put_varlong(&mut self.buf, body_len as i64);
        self.buf.push(0); // attributes
        put_varlong(&mut self.buf, ts_delta);
        put_varlong(&mut self.buf, offset_delta);
        put_varlong(&mut self.buf, key_len);
        if let Some(k) = key {
            self.buf.extend_from_slice(k);
        }
        put_varlong(&mut self.buf, value_len);
        self.buf.extend_from_slice(value_head);
        self.buf.extend_from_slice(value_tail);
        put_varlong(&mut self.buf, 0); // headers
        self.count += 1;
    }

    /// Fills the header, compresses if asked and returns the finished batch
    /// bytes. `base_sequence` is -1 without idempotence.
    pub fn finish(
        self,
        producer: Option<ProducerIdentity>,
        base_sequence: i32,
    ) -> Result<Vec<u8>, BatchError> {
        let mut out = match self.compression {
            Compression::None => self.buf,
            c => {
                let mut out = Vec::with_capacity(self.buf.len() / 2 + BATCH_HEADER_LEN);
                out.resize(BATCH_HEADER_LEN, 0);
                compress(c, &self.buf[BATCH_HEADER_LEN..], &mut out)?;
                out
            }
        };
        let batch_length = (out.len() - 12) as i32;
        let (pid, epoch) = producer.map_or((-1, -1), |p| (p.producer_id, p.producer_epoch));
        let h = &mut out[..BATCH_HEADER_LEN];
        h[0..8].copy_from_slice(&0i64.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        h[16] = 2;
        h[21..23].copy_from_slice(&self.compression.attribute().to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        h[43..51].copy_from_slice(&pid.to_be_bytes());
        h[51..53].copy_from_slice(&epoch.to_be_bytes());
        h[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

fn compress(c: Compression, src: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    match c {
        Compression::Lz4 => {
            let mut enc = lz4::EncoderBuilder::new().level(1).build(out)?;
            enc.write_all(src)?;
            let (_, r) = enc.finish();
            r?;
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(out, 1)?;
            enc.write_all(src)?;
            enc.finish()?;
        }
        Compression::None => out.extend_from_slice(src),
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
    mut data: &[u8],
    want_stamps: bool,
    verify_crc: bool,
    mut on_batch: impl FnMut(BatchInfo),
    mut on_stamp: impl FnMut(usize, i32, u32, u64),
) -> Result<(), BatchError> {
    let mut batch_index = 0usize;
    while data.len() >= BATCH_HEADER_LEN {
        let base_offset = be_i64(&data[0..8]);
        let batch_length = be_i32(&data[8..12]);
        if batch_length < (BATCH_HEADER_LEN - 12) as i32 {
            return Err(BatchError::Malformed("batch length below the header size"));
        }
        let size = 12 + batch_length as usize;
        if data.len() < size {
            break;
        }
        let batch = &data[..size];
        data = &data[size..];
        let magic = batch[16] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        if verify_crc {
            let stored = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
            let computed = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
            if stored != computed {
                return Err(BatchError::Crc { stored, computed });
            }
        }
        let attributes = i16::from_be_bytes([batch[21], batch[22]]);
        let records = be_i32(&batch[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]);
        let control = attributes & 0x20 != 0;
        on_batch(BatchInfo {
            base_offset,
            last_offset_delta: be_i32(&batch[23..27]),
            records: if control { 0 } else { records },
            size,
        });
        if want_stamps && !control {
            let body = &batch[BATCH_HEADER_LEN..];
            let mut f = |i: i32, run: u32, stamp: u64| on_stamp(batch_index, i, run, stamp);
            match Compression::from_attributes(attributes) {
                Compression::None => read_stamps(body, records, &mut f)?,
                c => read_stamps(&decompress(c, body)?, records, &mut f)?,
            }
        }
        batch_index += 1;
    }
    Ok(())
}

fn read_stamps(
    mut body: &[u8],
    records: i32,
    on_stamp: &mut impl FnMut(i32, u32, u64),
) -> Result<(), BatchError> {
    for i in 0..records.max(0) {
        let len = get_varlong(&mut body)?;
        if len < 0 || len as usize > body.len() {
            return Err(BatchError::Malformed("record length"));
        }
        let (mut rec, rest) = body.split_at(len as usize);
        body = rest;
        skip(&mut rec, 1)?; // attributes
        get_varlong(&mut rec)?; // timestamp delta
        get_varlong(&mut rec)?; // offset delta
        let key_len = get_varlong(&mut rec)?;
        if key_len > 0 {
            skip(&mut rec, key_len as usize)?;
        }
        let value_len = get_varlong(&mut rec)?;
        if value_len >= STAMP_LEN as i64 && rec.len() >= STAMP_LEN {
            if let Some((run, stamp)) = parse_stamp(&rec[..STAMP_LEN]) {
                on_stamp(i, run, stamp);
            }
        }
    }
    Ok(())
}

/// Writes the stamp that opens a record value.
pub fn write_stamp(out: &mut [u8; STAMP_LEN], run_id: u32, stamp_ns: u64) {
    out[0..4].copy_from_slice(&STAMP_TAG.to_be_bytes());
    out[4..8].copy_from_slice(&run_id.to_be_bytes());
    out[8..16].copy_from_slice(&stamp_ns.to_be_bytes());
}

pub fn parse_stamp(v: &[u8]) -> Option<(u32, u64)> {
    if v.len() < STAMP_LEN || v[0..4] != STAMP_TAG.to_be_bytes() {
        return None;
    }
    let run = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
    let mut s = [0u8; 8];
    s.copy_from_slice(&v[8..16]);
    Some((run, u64::from_be_bytes(s)))
}

fn skip(b: &mut &[u8], n: usize) -> Result<(), BatchError> {
    if b.len() < n {
        return Err(BatchError::Truncated);
    }
    *b = &b[n..];
    Ok(())
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

pub fn varlong_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

pub fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

pub fn get_varlong(b: &mut &[u8]) -> Result<i64, BatchError> {
    let mut z: u64 = 0;
    for i in 0..10 {
        let Some((&byte, rest)) = b.split_first() else {
            return Err(BatchError::Truncated);
        };
        *b = rest;
        z |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(BatchError::Malformed("varint longer than 10 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn varlong_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i64::MAX,
            i64::MIN,
            1 << 40,
        ] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v));
            let mut s = buf.as_slice();
            assert_eq!(get_varlong(&mut s).unwrap(), v);
            assert!(s.is_empty());
        }
    }
}
