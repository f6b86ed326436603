//! Produce requests, by hand. Decode (the broker's): the record batches
//! stay slices of the request frame (split off the frame's `BytesMut`, so
//! each is unique and the engine can write baseOffset in place) and are
//! never copied or decoded here. Encode (a client's, such as loadgen's):
//! the frame is written around the caller's batches, which are sent from
//! where they are, not copied into it. Versions 3-13; v9+ are flexible,
//! v13 names topics by id.

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::frame::FRAME_PREFIX_LEN;
use crate::wire::{put_array_len, put_string, put_uvarint, Reader};
use crate::DecodeError;

/// The Produce versions this decoder understands.
pub const PRODUCE_DECODE_VERSIONS: std::ops::RangeInclusive<i16> = 3..=13;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequest {
    pub transactional_id: Option<String>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<ProduceTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceTopic {
    /// Empty for v13+, which names topics by id.
    pub name: String,
    /// All zero before v13.
    pub topic_id: [u8; 16],
    pub partitions: Vec<ProducePartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    pub index: i32,
    /// The record batches exactly as sent; `None` for a null records field.
    pub records: Option<BytesMut>,
}

fn flexible(version: i16) -> bool {
    version >= 9
}

/// Decodes a Produce request body (the frame after the request header).
pub fn decode_produce(mut body: BytesMut, version: i16) -> Result<ProduceRequest, DecodeError> {
    if !PRODUCE_DECODE_VERSIONS.contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            api: "Produce",
            version,
        });
    }
    let (mut req, ranges) = parse(&body, version)?;
    // Split the records off the body in ascending order: each is a unique
    // BytesMut over the frame's allocation, no bytes copied.
    let mut consumed = 0usize;
    let mut ranges = ranges.into_iter();
    for topic in &mut req.topics {
        for p in &mut topic.partitions {
            let Some(range) = ranges.next() else {
                return Err(DecodeError::Malformed("records ranges out of step".into()));
            };
            if let Some(r) = range {
                let _skip = body.split_to(r.start - consumed);
                p.records = Some(body.split_to(r.len()));
                consumed = r.end;
            }
        }
    }
    Ok(req)
}

type Parsed = (ProduceRequest, Vec<Option<Range<usize>>>);

fn parse(body: &[u8], version: i16) -> Result<Parsed, DecodeError> {
    let flex = flexible(version);
    let mut r = Reader::new(body);
    let transactional_id = r.nullable_string(flex)?.map(str::to_owned);
    let acks = r.i16()?;
    if !matches!(acks, -1..=1) {
        return Err(DecodeError::Invalid {
            what: "acks",
            value: i64::from(acks),
        });
    }
    let timeout_ms = r.i32()?;
    let topic_count = r.array_len(flex, 2)?.unwrap_or(0);
    let mut topics = Vec::with_capacity(topic_count);
    let mut ranges = Vec::new();
    for _ in 0..topic_count {
        let (name, topic_id) = if version >= 13 {
            (String::new(), r.uuid()?)
        } else {
            (r.string(flex)?.to_owned(), [0u8; 16])
        };
        let part_count = r.array_len(flex, 5)?.unwrap_or(0);
        let mut partitions = Vec::with_capacity(part_count);
        for _ in 0..part_count {
            let index = r.i32()?;
            ranges.push(r.nullable_bytes_range(flex)?);
            if flex {
                r.skip_tagged_fields()?;
            }
            partitions.push(ProducePartition {
                index,
                records: None,
            });
        }
        if flex {
            r.skip_tagged_fields()?;
        }
        topics.push(ProduceTopic {
            name,
            topic_id,
            partitions,
        });
    }
    if flex {
        r.skip_tagged_fields()?;
    }
    Ok((
        ProduceRequest {
            transactional_id,
            acks,
            timeout_ms,
            topics,
        },
        ranges,
    ))
}

/// Encodes a Produce request body, the records copied in (for tests and
/// the fuzz round trip; a client sends [`encode_produce_frame`]'s pieces).
pub fn encode_produce(req: &ProduceRequest, version: i16, buf: &mut BytesMut) {
    encode_body(req, version, buf, |buf, records| buf.put_slice(records));
}

/// Encodes a whole Produce request frame (size prefix, request header,
/// body) for a client, without copying the record batches: `buf` gets
/// every other byte, and the returned offsets into `buf` say where each
/// partition's records go, in request order (null records have none).
/// [`produce_pieces`] yields the frame in wire order, for one `writev`.
pub fn encode_produce_frame(
    correlation_id: i32,
    client_id: &str,
    req: &ProduceRequest,
    version: i16,
    buf: &mut BytesMut,
) -> Vec<usize> {
    let start = buf.len();
    buf.put_i32(0); // the size, known at the end
    buf.put_i16(ApiKey::Produce as i16);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    put_string(buf, client_id, false);
    if flexible(version) {
        buf.put_u8(0); // header tagged fields
    }
    let mut cuts = Vec::new();
    let mut records_len = 0usize;
    encode_body(req, version, buf, |buf, records| {
        cuts.push(buf.len());
        records_len += records.len();
    });
    let size = (buf.len() - start - FRAME_PREFIX_LEN + records_len) as i32;
    buf[start..start + FRAME_PREFIX_LEN].copy_from_slice(&size.to_be_bytes());
    cuts
}

/// The pieces of a frame from [`encode_produce_frame`], in wire order:
/// `head` up to each cut, then that partition's records, then the rest.
pub fn produce_pieces<'a>(
    head: &'a [u8],
    cuts: &[usize],
    req: &'a ProduceRequest,
) -> Vec<&'a [u8]> {
    let records = req
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_deref());
    let mut pieces = Vec::with_capacity(2 * cuts.len() + 1);
    let mut at = 0;
    for (&cut, rec) in cuts.iter().zip(records) {
        pieces.push(&head[at..cut]);
        pieces.push(rec);
        at = cut;
    }
    pieces.push(&head[at..]);
    pieces
}

/// The body, with `put_records` writing each non-null records field's
/// bytes after its length.
fn encode_body(
    req: &ProduceRequest,
    version: i16,
    buf: &mut BytesMut,
    mut put_records: impl FnMut(&mut BytesMut, &[u8]),
) {
    let flex = flexible(version);
    match &req.transactional_id {
        Some(t) => put_string(buf, t, flex),
        None if flex => put_uvarint(buf, 0),
        None => buf.put_i16(-1),
    }
    buf.put_i16(req.acks);
    buf.put_i32(req.timeout_ms);
    put_array_len(buf, req.topics.len(), flex);
    for t in &req.topics {
        if version >= 13 {
            buf.put_slice(&t.topic_id);
        } else {
            put_string(buf, &t.name, flex);
        }
        put_array_len(buf, t.partitions.len(), flex);
        for p in &t.partitions {
            buf.put_i32(p.index);
            match &p.records {
                Some(rec) if flex => {
                    put_uvarint(buf, rec.len() as u32 + 1);
                    put_records(buf, rec);
                }
                Some(rec) => {
                    buf.put_i32(rec.len() as i32);
                    put_records(buf, rec);
                }
                None if flex => put_uvarint(buf, 0),
                None => buf.put_i32(-1),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, ProducerFields};
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest as KpProduce, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use proptest::prelude::*;

    fn arb_request(version: i16) -> impl Strategy<Value = ProduceRequest> {
        let topic = (
            "[a-z]{1,12}",
            any::<[u8; 16]>(),
            proptest::collection::vec(
                (
                    any::<i32>(),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
                ),
                0..4,
            ),
        )
            .prop_map(move |(name, id, parts)| ProduceTopic {
                name: if version >= 13 { String::new() } else { name },
                topic_id: if version >= 13 { id } else { [0; 16] },
                partitions: parts
                    .into_iter()
                    .map(|(index, rec)| ProducePartition {
                        index,
                        records: rec.map(|r| BytesMut::from(&r[..])),
                    })
                    .collect(),
            });
        (
            proptest::option::of("[a-z]{0,10}"),
            -1i16..=1,
            any::<i32>(),
            proptest::collection::vec(topic, 0..4),
        )
            .prop_map(
                |(transactional_id, acks, timeout_ms, topics)| ProduceRequest {
                    transactional_id,
                    acks,
                    timeout_ms,
                    topics,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip((version, req) in (3i16..=13).prop_flat_map(|v| (Just(v), arb_request(v)))) {
            let mut buf = BytesMut::new();
            encode_produce(&req, version, &mut buf);
            let back = decode_produce(buf, version).unwrap();
            prop_assert_eq!(back, req);
        }

        #[test]
        fn agrees_with_kafka_protocol(version in 3i16..=12, acks in -1i16..=1, timeout: i32,
                                      parts in proptest::collection::vec((any::<i32>(), proptest::collection::vec(any::<u8>(), 1..100)), 1..5)) {
            let kp = KpProduce::default()
                .with_acks(acks)
                .with_timeout_ms(timeout)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("orders")))
                    .with_partition_data(parts.iter().map(|(i, r)| PartitionProduceData::default()
                        .with_index(*i)
                        .with_records(Some(Bytes::from(r.clone())))).collect())]);
            let mut buf = BytesMut::new();
            kp.encode(&mut buf, version).unwrap();
            let mine = decode_produce(buf, version).unwrap();
            prop_assert_eq!(mine.acks, acks);
            prop_assert_eq!(mine.timeout_ms, timeout);
            prop_assert_eq!(&mine.topics[0].name, "orders");
            for (p, (i, r)) in mine.topics[0].partitions.iter().zip(&parts) {
                prop_assert_eq!(p.index, *i);
                prop_assert_eq!(p.records.as_deref(), Some(&r[..]));
            }
        }

        #[test]
        fn frame_pieces_are_the_copying_encoders_body((version, req) in (3i16..=13).prop_flat_map(|v| (Just(v), arb_request(v))), id: i32) {
            let mut head = BytesMut::new();
            let cuts = encode_produce_frame(id, "client", &req, version, &mut head);
            let frame: Vec<u8> = produce_pieces(&head, &cuts, &req).concat();
            let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            prop_assert_eq!(size as usize, frame.len() - FRAME_PREFIX_LEN);
            let mut frame = BytesMut::from(&frame[FRAME_PREFIX_LEN..]);
            let (key, header) = crate::header::decode_request_header(&mut frame).unwrap();
            prop_assert_eq!(key, ApiKey::Produce);
            prop_assert_eq!(header.request_api_version, version);
            prop_assert_eq!(header.correlation_id, id);
            prop_assert_eq!(header.client_id.as_deref(), Some("client"));
            let mut body = BytesMut::new();
            encode_produce(&req, version, &mut body);
            prop_assert_eq!(&frame[..], &body[..]);
        }

        #[test]
        fn decode_never_panics(data: Vec<u8>, version in 3i16..=13) {
            let _ = decode_produce(BytesMut::from(&data[..]), version);
        }
    }

    /// Checks produce requests decode with kafka_protocol.
    fn decode_with_kafka_protocol(frame: &[u8], version: i16) -> KpProduce {
        let mut b = Bytes::copy_from_slice(&frame[4..]);
        let _h = RequestHeader::decode(&mut b, 1).unwrap();
        KpProduce::decode(&mut b, version).unwrap()
    }

    #[test]
    fn produce_frame_decodes_with_kafka_protocol() {
        let mut b1 = BatchBuilder::new(1024);
        b1.push(1, None, Some(b"hello"));
        let b1 = b1.finish(ProducerFields::NONE);
        let mut b2 = BatchBuilder::new(1024);
        b2.push_parts(2, Some(b"k"), &[b"world", b"!"]);
        let b2 = b2.finish(ProducerFields::NONE);
        for version in 3..=8 {
            let req = ProduceRequest {
                transactional_id: None,
                acks: -1,
                timeout_ms: 1500,
                topics: vec![ProduceTopic {
                    name: "bench".into(),
                    topic_id: [0; 16],
                    partitions: vec![
                        ProducePartition {
                            index: 3,
                            records: Some(b1.clone()),
                        },
                        ProducePartition {
                            index: 9,
                            records: Some(b2.clone()),
                        },
                    ],
                }],
            };
            let mut head = BytesMut::new();
            let cuts = encode_produce_frame(77, "loadgen", &req, version, &mut head);
            let frame = produce_pieces(&head, &cuts, &req).concat();
            assert_eq!(
                i32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize,
                frame.len() - 4
            );
            let req = decode_with_kafka_protocol(&frame, version);
            assert_eq!(req.acks, -1);
            assert_eq!(req.timeout_ms, 1500);
            assert_eq!(req.topic_data.len(), 1);
            let t = &req.topic_data[0];
            assert_eq!(t.name.0.as_str(), "bench");
            assert_eq!(t.partition_data.len(), 2);
            assert_eq!(t.partition_data[0].index, 3);
            assert_eq!(t.partition_data[0].records.as_deref(), Some(&b1[..]));
            assert_eq!(t.partition_data[1].index, 9);
            assert_eq!(t.partition_data[1].records.as_deref(), Some(&b2[..]));
        }
    }

    #[test]
    fn records_are_slices_of_the_frame() {
        let req = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 1000,
            topics: vec![ProduceTopic {
                name: "t".into(),
                topic_id: [0; 16],
                partitions: vec![ProducePartition {
                    index: 0,
                    records: Some(BytesMut::from(&[9u8; 64][..])),
                }],
            }],
        };
        let mut buf = BytesMut::new();
        encode_produce(&req, 9, &mut buf);
        let frame_range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let back = decode_produce(buf, 9).unwrap();
        let rec = back.topics[0].partitions[0].records.as_ref().unwrap();
        assert!(frame_range.contains(&(rec.as_ptr() as usize)));
    }

    #[test]
    fn bad_acks_and_absurd_counts_are_errors() {
        let mut buf = BytesMut::new();
        buf.put_i16(-1);
        buf.put_i16(7);
        buf.put_i32(0);
        buf.put_i32(0);
        assert!(matches!(
            decode_produce(buf, 3),
            Err(DecodeError::Invalid { .. })
        ));
        let mut buf = BytesMut::new();
        buf.put_i16(-1);
        buf.put_i16(1);
        buf.put_i32(0);
        buf.put_i32(i32::MAX);
        assert!(matches!(
            decode_produce(buf, 3),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
