//! The records of the internal `__consumer_offsets` topic, in Kafka's own
//! formats (so its tools can read our log): offset commits (key version 1,
//! value version 3) and group metadata (key version 2, value version 3).
//! A record with a null value is a tombstone for its key.

use bytes::{BufMut, Bytes, BytesMut};
use spindle_codec::wire::Reader;
use spindle_codec::DecodeError;

const OFFSET_KEY_V0: i16 = 0;
const OFFSET_KEY_V1: i16 = 1;
const GROUP_KEY_V2: i16 = 2;
const OFFSET_VALUE_V3: i16 = 3;
const GROUP_VALUE_V3: i16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

impl Key {
    pub fn group(&self) -> &str {
        match self {
            Key::Offset { group, .. } | Key::Group { group } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

fn put_str(b: &mut BytesMut, s: &str) {
    // Strings here are group ids, topic names, member ids: the request
    // decoders already bounded them to i16 lengths.
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_opt_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => b.put_i16(-1),
        Some(s) => put_str(b, s),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn get_str(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    Ok(r.string(false)?.to_string())
}

fn get_opt_str(r: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    Ok(r.nullable_string(false)?.map(str::to_string))
}

fn get_bytes(r: &mut Reader<'_>) -> Result<Bytes, DecodeError> {
    let n = r.i32()?;
    let n = usize::try_from(n).map_err(|_| DecodeError::Invalid {
        what: "bytes length",
        value: i64::from(n),
    })?;
    Ok(Bytes::copy_from_slice(r.take(n)?))
}

pub fn encode_key(k: &Key) -> BytesMut {
    let mut b = BytesMut::with_capacity(64);
    match k {
        Key::Offset {
            group,
            topic,
            partition,
        } => {
            b.put_i16(OFFSET_KEY_V1);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        Key::Group { group } => {
            b.put_i16(GROUP_KEY_V2);
            put_str(&mut b, group);
        }
    }
    b
}

/// `Ok(None)`: a key version we do not know (newer Kafka record types),
/// which the loader skips.
pub fn decode_key(buf: &[u8]) -> Result<Option<Key>, DecodeError> {
    let mut r = Reader::new(buf);
    Ok(match r.i16()? {
        OFFSET_KEY_V0 | OFFSET_KEY_V1 => Some(Key::Offset {
            group: get_str(&mut r)?,
            topic: get_str(&mut r)?,
            partition: r.i32()?,
        }),
        GROUP_KEY_V2 => Some(Key::Group {
            group: get_str(&mut r)?,
        }),
        _ => None,
    })
}

pub fn encode_offset(v: &OffsetValue) -> BytesMut {
    let mut b = BytesMut::with_capacity(32 + v.metadata.len());
    b.put_i16(OFFSET_VALUE_V3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp_ms);
    b
}

/// Reads value versions 0-3 (0 and 2 lack the leader epoch, 1 has an
/// expire timestamp we ignore: expiry follows the broker's retention).
pub fn decode_offset(buf: &[u8]) -> Result<OffsetValue, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = get_str(&mut r)?;
    let commit_timestamp_ms = r.i64()?;
    if version == 1 {
        let _expire = r.i64()?;
    }
    if !(0..=3).contains(&version) {
        return Err(DecodeError::Invalid {
            what: "offset commit value version",
            value: i64::from(version),
        });
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

pub fn encode_group(v: &GroupValue) -> BytesMut {
    let mut b = BytesMut::with_capacity(128);
    b.put_i16(GROUP_VALUE_V3);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_opt_str(&mut b, v.protocol.as_deref());
    put_opt_str(&mut b, v.leader.as_deref());
    b.put_i64(v.state_timestamp_ms);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_opt_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b
}

/// Reads value version 3 (what we write; Kafka 2.3+ writes it too).
pub fn decode_group(buf: &[u8]) -> Result<GroupValue, DecodeError> {
    let mut r = Reader::new(buf);
    let version = r.i16()?;
    if version != GROUP_VALUE_V3 {
        return Err(DecodeError::Invalid {
            what: "group metadata value version",
            value: i64::from(version),
        });
    }
    let protocol_type = get_str(&mut r)?;
    let generation = r.i32()?;
    let protocol = get_opt_str(&mut r)?;
    let leader = get_opt_str(&mut r)?;
    let state_timestamp_ms = r.i64()?;
    let n = r.i32()?;
    // Each member takes at least 24 bytes: bound the count by what is left.
    if n < 0 || n as usize > r.remaining() / 24 {
        return Err(DecodeError::Invalid {
            what: "member count",
            value: i64::from(n),
        });
    }
    let mut members = Vec::with_capacity(n as usize);
    for _ in 0..n {
        members.push(MemberValue {
            member_id: get_str(&mut r)?,
            instance_id: get_opt_str(&mut r)?,
            client_id: get_str(&mut r)?,
            client_host: get_str(&mut r)?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: get_bytes(&mut r)?,
            assignment: get_bytes(&mut r)?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        for k in [
            Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
            },
            Key::Group { group: "g2".into() },
        ] {
            assert_eq!(decode_key(&encode_key(&k)).unwrap(), Some(k));
        }
        let o = OffsetValue {
            offset: 42,
            leader_epoch: -1,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        assert_eq!(decode_offset(&encode_offset(&o)).unwrap(), o);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp_ms: 5,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group(&encode_group(&g)).unwrap(), g);
    }

    #[test]
    fn kafka_layout_of_an_offset_key() {
        let k = encode_key(&Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        });
        assert_eq!(&k[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        assert_eq!(decode_key(&[0, 9, 0, 0]).unwrap(), None);
    }

    #[test]
    fn truncated_or_absurd_values_are_errors() {
        let g = encode_group(&GroupValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: None,
            leader: None,
            state_timestamp_ms: 0,
            members: vec![],
        });
        let mut absurd = g.to_vec();
        let n = absurd.len();
        absurd[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_group(&absurd).is_err());
        for cut in 0..g.len() - 1 {
            assert!(decode_group(&g[..cut]).is_err());
        }
        assert!(decode_offset(&[0, 3, 0]).is_err());
    }
}
