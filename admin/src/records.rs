//! Record batches for `produce` and `consume`, with kafka-protocol's batch
//! codec: unlike the codec's own batch builder (which the broker and
//! loadgen use, and which writes no headers), it carries record headers
//! and every compression, and the CLI is no hot path. The codec's batch
//! walk splits a fetched chunk into whole batches first: a fetch answer
//! may end in part of a batch, which is not an error.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use spindle_codec::batch::Batches;

use crate::cli;
use crate::error::{AdminError, Result};

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    pub timestamp_ms: i64,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

pub fn compression(c: cli::Compression) -> Compression {
    match c {
        cli::Compression::None => Compression::None,
        cli::Compression::Gzip => Compression::Gzip,
        cli::Compression::Snappy => Compression::Snappy,
        cli::Compression::Lz4 => Compression::Lz4,
        cli::Compression::Zstd => Compression::Zstd,
    }
}

/// One v2 batch of `records` (baseOffset 0: the broker assigns offsets).
pub fn encode_batch(records: &[Outgoing], compression: Compression) -> Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: r.timestamp_ms,
            key: r.key.clone(),
            value: Some(r.value.clone()),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), Some(v.clone())))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| AdminError::Protocol(format!("encode a record batch: {e}")))?;
    Ok(buf.freeze())
}

/// The records of every whole batch in `chunk` at or after `from`, in
/// order; control records (transaction markers) are skipped.
pub fn decode(chunk: &Bytes, from: i64) -> Result<Vec<Incoming>> {
    let mut out = Vec::new();
    for batch in Batches::new(chunk) {
        let (_, bytes) = batch.map_err(|e| AdminError::Protocol(format!("fetched batch: {e}")))?;
        let mut one = chunk.slice_ref(bytes);
        let set = RecordBatchDecoder::decode(&mut one)
            .map_err(|e| AdminError::Protocol(format!("fetched batch: {e}")))?;
        for r in set.records {
            if r.control || r.offset < from {
                continue;
            }
            out.push(Incoming {
                offset: r.offset,
                timestamp_ms: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// The offset after the last whole batch in `chunk`, if it holds one:
/// where the next fetch starts even when every record in it was skipped
/// (control batches, records before `from`).
pub fn next_offset(chunk: &[u8]) -> Option<i64> {
    Batches::new(chunk)
        .filter_map(|b| b.ok())
        .last()
        .map(|(h, _)| h.last_offset() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: Option<&str>, v: &str, h: &[(&str, &str)]) -> Outgoing {
        Outgoing {
            key: k.map(|k| Bytes::from(k.to_string())),
            value: Bytes::from(v.to_string()),
            headers: h
                .iter()
                .map(|(a, b)| (a.to_string(), Bytes::from(b.to_string())))
                .collect(),
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn batches_round_trip_with_headers_in_every_compression() {
        let recs = vec![
            rec(Some("k1"), "v1", &[("h", "x"), ("g", "")]),
            rec(None, "v2", &[]),
        ];
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = encode_batch(&recs, c).unwrap();
            // A partial second batch is left alone.
            let mut two = b.to_vec();
            two.extend_from_slice(&b[..b.len() / 2]);
            let two = Bytes::from(two);
            let got = decode(&two, 1).unwrap();
            assert_eq!(got.len(), 1, "{c:?}");
            assert_eq!(got[0].offset, 1);
            assert_eq!(got[0].value.as_deref(), Some(&b"v2"[..]));
            let all = decode(&two, 0).unwrap();
            assert_eq!(all[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(
                all[0].headers,
                vec![
                    ("h".to_string(), Some(Bytes::from_static(b"x"))),
                    ("g".to_string(), Some(Bytes::new()))
                ]
            );
            assert_eq!(next_offset(&two), Some(2));
        }
    }
}
