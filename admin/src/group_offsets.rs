//! A group's committed offsets: read with OffsetFetch, written with
//! OffsetCommit, at the group's coordinator. Shared by `group describe`,
//! `group reset-offsets` (which commits as an admin: generation -1, no
//! member, accepted only while the group is empty, as Kafka's
//! AlterConsumerGroupOffsets does) and `consume --group` (which commits
//! as a member of its generation). And the framing of the consumer
//! protocol's subscriptions and assignments, which `consume --group`
//! writes and `group describe` reads.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use spindle_codec::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use spindle_codec::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use spindle_codec::kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest};
use spindle_codec::kafka_protocol::protocol::{Decodable, Encodable, Message};

use crate::client::{str_bytes, topic_name};
use crate::conn::Conn;
use crate::error::{AdminError, Result};

/// (topic, partition) -> offset.
pub type Offsets = BTreeMap<(String, i32), i64>;

pub fn group_id(g: &str) -> GroupId {
    GroupId(str_bytes(g))
}

/// The committed offsets of `group`, of the given partitions or (`None`)
/// of every partition it has one for. Partitions without a committed
/// offset are left out.
pub fn committed(
    conn: &mut Conn,
    group: &str,
    partitions: Option<&[(String, i32)]>,
) -> Result<Offsets> {
    let topics = partitions.map(|ps| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in ps {
            by_topic.entry(t).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partition_indexes(ps)
            })
            .collect()
    });
    let req = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics);
    let resp = conn.call(&req)?;
    let ctx = || format!("committed offsets of group {group}");
    AdminError::check(resp.error_code, None, ctx)?;
    let mut out = Offsets::new();
    for t in resp.topics {
        for p in t.partitions {
            AdminError::check(p.error_code, None, ctx)?;
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// Commits `offsets` for `group`: as member `member_id` of `generation`,
/// or with generation -1 and no member as an admin of an empty group.
pub fn commit(
    conn: &mut Conn,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &Offsets,
) -> Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(str_bytes(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = conn.call(&req)?;
    for t in resp.topics {
        for p in t.partitions {
            AdminError::check(p.error_code, None, || {
                format!(
                    "commit offsets of group {group} for {}/{}",
                    t.name.0, p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

/// Kafka's ConsumerProtocol framing: an i16 version, then the message.
pub fn encode_versioned<M: Encodable>(m: &M, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    m.encode(&mut buf, version)
        .map_err(|e| AdminError::Protocol(format!("encode consumer protocol: {e}")))?;
    Ok(buf.freeze())
}

/// Reads a ConsumerProtocol message at the highest version we know of at
/// most, as Kafka does: newer versions only add fields at the end.
pub fn decode_versioned<M: Decodable + Message>(bytes: &mut Bytes) -> Result<M> {
    if bytes.remaining() < 2 {
        return Err(AdminError::Protocol(
            "consumer protocol message too short".into(),
        ));
    }
    let v = bytes.get_i16().clamp(0, M::VERSIONS.max);
    M::decode(bytes, v).map_err(|e| AdminError::Protocol(format!("decode consumer protocol: {e}")))
}
