//! Fetch response encode, by hand: the response is a list of pieces, the
//! encoded header bytes interleaved with the caller's record chunks, so the
//! server writes cached `Bytes` and sends file ranges without copying the
//! records into a response buffer. Versions 4-18; v12+ are flexible, v13+
//! name topics by id.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::header::{put_response_header, response_header_len};
use crate::wire::{put_array_len, put_null_array, put_string, put_uvarint};
use crate::EncodeError;

/// The Fetch versions this encoder writes.
pub const FETCH_ENCODE_VERSIONS: std::ops::RangeInclusive<i16> = 4..=18;

/// A piece of record data the caller owns: cached bytes, a file range...
pub trait RecordChunk {
    fn len_bytes(&self) -> u32;
}

impl RecordChunk for Bytes {
    fn len_bytes(&self) -> u32 {
        self.len() as u32
    }
}

#[derive(Debug, Clone)]
pub struct FetchResponse<C> {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopic<C>>,
}

#[derive(Debug, Clone)]
pub struct FetchTopic<C> {
    /// Written for v4-12.
    pub name: String,
    /// Written for v13+.
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchPartition<C>>,
}

#[derive(Debug, Clone)]
pub struct FetchPartition<C> {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `None` writes a null records field.
    pub records: Option<Vec<C>>,
}

/// One piece of an encoded response, in wire order.
#[derive(Debug, Clone)]
pub enum Piece<C> {
    Bytes(Bytes),
    Chunk(C),
}

/// Encodes a complete Fetch response frame (size prefix included).
pub fn encode_fetch_response<C: RecordChunk>(
    version: i16,
    correlation_id: i32,
    resp: FetchResponse<C>,
) -> Result<Vec<Piece<C>>, EncodeError> {
    if !FETCH_ENCODE_VERSIONS.contains(&version) {
        return Err(EncodeError::Message(format!(
            "Fetch v{version} is not encodable"
        )));
    }
    let flex = version >= 12;
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // patched below
    put_response_header(&mut buf, ApiKey::Fetch, version, correlation_id);
    buf.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(resp.error_code);
        buf.put_i32(resp.session_id);
    }
    // (position in buf where the chunks go, the chunks)
    let mut cuts: Vec<(usize, Vec<C>)> = Vec::new();
    let mut records_total: u64 = 0;
    put_array_len(&mut buf, resp.topics.len(), flex);
    for topic in resp.topics {
        if version >= 13 {
            buf.put_slice(&topic.topic_id);
        } else {
            put_string(&mut buf, &topic.name, flex);
        }
        put_array_len(&mut buf, topic.partitions.len(), flex);
        for p in topic.partitions {
            buf.put_i32(p.partition_index);
            buf.put_i16(p.error_code);
            buf.put_i64(p.high_watermark);
            buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                buf.put_i64(p.log_start_offset);
            }
            put_null_array(&mut buf, flex); // aborted transactions
            if version >= 11 {
                buf.put_i32(-1); // preferred read replica
            }
            match p.records {
                None if flex => put_uvarint(&mut buf, 0),
                None => buf.put_i32(-1),
                Some(chunks) => {
                    let len: u64 = chunks.iter().map(|c| u64::from(c.len_bytes())).sum();
                    let len32 = u32::try_from(len)
                        .ok()
                        .filter(|l| *l < i32::MAX as u32)
                        .ok_or(EncodeError::TooLarge(len))?;
                    if flex {
                        put_uvarint(&mut buf, len32 + 1);
                    } else {
                        buf.put_i32(len32 as i32);
                    }
                    records_total += len;
                    if !chunks.is_empty() {
                        cuts.push((buf.len(), chunks));
                    }
                }
            }
            if flex {
                buf.put_u8(0);
            }
        }
        if flex {
            buf.put_u8(0);
        }
    }
    if flex {
        buf.put_u8(0);
    }
    let total = (buf.len() - 4) as u64 + records_total;
    let total32 = i32::try_from(total).map_err(|_| EncodeError::TooLarge(total))?;
    buf[..4].copy_from_slice(&total32.to_be_bytes());
    debug_assert!(buf.len() >= 4 + response_header_len(ApiKey::Fetch, version));
    let bytes = buf.freeze();
    let mut pieces = Vec::with_capacity(cuts.len() * 3 + 1);
    let mut at = 0usize;
    for (pos, chunks) in cuts {
        if pos > at {
            pieces.push(Piece::Bytes(bytes.slice(at..pos)));
        }
        pieces.extend(chunks.into_iter().map(Piece::Chunk));
        at = pos;
    }
    if at < bytes.len() {
        pieces.push(Piece::Bytes(bytes.slice(at..)));
    }
    Ok(pieces)
}

/// Total bytes on the wire of an encoded response, prefix included.
pub fn pieces_len<C: RecordChunk>(pieces: &[Piece<C>]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Chunk(c) => u64::from(c.len_bytes()),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse as KpFetch;
    use kafka_protocol::protocol::Decodable;
    use proptest::prelude::*;

    fn flatten(pieces: &[Piece<Bytes>]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in pieces {
            match p {
                Piece::Bytes(b) | Piece::Chunk(b) => v.extend_from_slice(b),
            }
        }
        v
    }

    fn arb_partition() -> impl Strategy<Value = FetchPartition<Bytes>> {
        (
            any::<i32>(),
            any::<i16>(),
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..100).prop_map(Bytes::from),
                0..4,
            )),
        )
            .prop_map(|(i, e, hw, ls, rec)| FetchPartition {
                partition_index: i,
                error_code: e,
                high_watermark: hw,
                last_stable_offset: hw,
                log_start_offset: ls,
                records: rec,
            })
    }

    fn arb_response() -> impl Strategy<Value = FetchResponse<Bytes>> {
        let topic = (
            "[a-z]{1,10}",
            any::<[u8; 16]>(),
            proptest::collection::vec(arb_partition(), 0..4),
        )
            .prop_map(|(name, topic_id, partitions)| FetchTopic {
                name,
                topic_id,
                partitions,
            });
        (
            any::<i32>(),
            any::<i16>(),
            any::<i32>(),
            proptest::collection::vec(topic, 0..4),
        )
            .prop_map(|(t, e, s, topics)| FetchResponse {
                throttle_time_ms: t,
                error_code: e,
                session_id: s,
                topics,
            })
    }

    proptest! {
        #[test]
        fn kafka_protocol_decodes_what_we_encode(version in 4i16..=18, corr: i32, resp in arb_response()) {
            let pieces = encode_fetch_response(version, corr, resp.clone()).unwrap();
            let wire = flatten(&pieces);
            prop_assert_eq!(pieces_len(&pieces), wire.len() as u64);
            let size = i32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]);
            prop_assert_eq!(size as usize, wire.len() - 4);
            prop_assert_eq!(i32::from_be_bytes([wire[4], wire[5], wire[6], wire[7]]), corr);
            let mut body = Bytes::from(wire).slice(4 + response_header_len(ApiKey::Fetch, version)..);
            let kp = KpFetch::decode(&mut body, version).unwrap();
            prop_assert_eq!(body.len(), 0);
            prop_assert_eq!(kp.throttle_time_ms, resp.throttle_time_ms);
            if version >= 7 {
                prop_assert_eq!(kp.error_code, resp.error_code);
                prop_assert_eq!(kp.session_id, resp.session_id);
            }
            prop_assert_eq!(kp.responses.len(), resp.topics.len());
            for (kt, t) in kp.responses.iter().zip(&resp.topics) {
                if version >= 13 {
                    prop_assert_eq!(kt.topic_id.as_bytes(), &t.topic_id);
                } else {
                    prop_assert_eq!(kt.topic.0.as_str(), t.name.as_str());
                }
                for (kpp, p) in kt.partitions.iter().zip(&t.partitions) {
                    prop_assert_eq!(kpp.partition_index, p.partition_index);
                    prop_assert_eq!(kpp.error_code, p.error_code);
                    prop_assert_eq!(kpp.high_watermark, p.high_watermark);
                    if version >= 5 {
                        prop_assert_eq!(kpp.log_start_offset, p.log_start_offset);
                    }
                    let want: Option<Vec<u8>> = p.records.as_ref().map(|c| c.iter().flat_map(|b| b.to_vec()).collect());
                    prop_assert_eq!(kpp.records.as_ref().map(|b| b.to_vec()), want);
                }
            }
        }
    }

    #[test]
    fn chunks_are_passed_through_not_copied() {
        let chunk = Bytes::from(vec![7u8; 4096]);
        let resp = FetchResponse {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: 0,
            topics: vec![FetchTopic {
                name: "t".into(),
                topic_id: [0; 16],
                partitions: vec![FetchPartition {
                    partition_index: 0,
                    error_code: 0,
                    high_watermark: 1,
                    last_stable_offset: 1,
                    log_start_offset: 0,
                    records: Some(vec![chunk.clone()]),
                }],
            }],
        };
        let pieces = encode_fetch_response(12, 1, resp).unwrap();
        let found = pieces
            .iter()
            .any(|p| matches!(p, Piece::Chunk(c) if c.as_ptr() == chunk.as_ptr()));
        assert!(found);
    }
}
