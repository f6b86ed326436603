//! Control-plane calls: metadata, topic creation, offsets, producer ids,
//! coordinators. All synchronous on one [`Conn`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use spindle_codec::kafka_protocol::messages::{
    create_topics_request::CreatableTopic, list_offsets_request::ListOffsetsPartition,
    list_offsets_request::ListOffsetsTopic, metadata_request::MetadataRequestTopic, BrokerId,
    CreateTopicsRequest, FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest,
    MetadataRequest, TopicName,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;

use crate::batch::ProducerIdentity;
use crate::conn::Conn;

/// Kafka error codes loadgen reacts to.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const LEADER_NOT_AVAILABLE: i16 = 5;

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Where each partition of a topic lives.
#[derive(Debug, Clone)]
pub struct TopicLayout {
    pub name: String,
    /// partition -> leader address "host:port"
    pub leaders: Vec<String>,
}

/// Fetches metadata for `topics` and maps partition leaders to addresses.
pub fn metadata(conn: &mut Conn, topics: &[String]) -> Result<Vec<TopicLayout>> {
    let req = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    let resp = conn.call(&req, (1, 12))?;
    // A single broker is reached at the address the user gave: brokers in
    // containers or behind NAT often advertise a name that does not
    // resolve here.
    let single = resp.brokers.len() == 1;
    let brokers: HashMap<i32, String> = resp
        .brokers
        .iter()
        .map(|b| {
            let addr = if single {
                conn.addr.clone()
            } else {
                format!("{}:{}", b.host.as_str(), b.port)
            };
            (b.node_id.0, addr)
        })
        .collect();
    let mut out = Vec::new();
    for t in resp.topics {
        let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            bail!("metadata for topic {name}: error {}", t.error_code);
        }
        let mut parts: Vec<_> = t.partitions.iter().collect();
        parts.sort_by_key(|p| p.partition_index);
        let mut leaders = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            if p.partition_index != i as i32 {
                bail!("topic {name}: partitions are not 0..n");
            }
            if p.error_code != 0 && p.error_code != LEADER_NOT_AVAILABLE {
                bail!("topic {name} partition {i}: error {}", p.error_code);
            }
            let addr = brokers.get(&p.leader_id.0).cloned().ok_or_else(|| {
                anyhow!(
                    "topic {name} partition {i}: leader {} not in metadata",
                    p.leader_id.0
                )
            })?;
            leaders.push(addr);
        }
        out.push(TopicLayout { name, leaders });
    }
    Ok(out)
}

/// Creates `topic` with `partitions` unless it exists, then waits (bounded)
/// until metadata shows every partition with a leader.
pub fn ensure_topic(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    replication: i16,
) -> Result<TopicLayout> {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)])
        .with_timeout_ms(30_000);
    let resp = conn.call(&req, (2, 7))?;
    for t in &resp.topics {
        if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
            let msg = t
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            bail!("create topic {topic}: error {} {msg}", t.error_code);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match metadata(conn, &[topic.to_string()]) {
            Ok(mut l) if l.len() == 1 && !l[0].leaders.is_empty() => {
                let layout = l.remove(0);
                if layout.leaders.len() as i32 != partitions {
                    eprintln!(
                        "loadgen: topic {topic} exists with {} partitions (asked for {partitions}); using it as is",
                        layout.leaders.len()
                    );
                }
                return Ok(layout);
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(_) => bail!("topic {topic} has no partitions after 30 s"),
            Err(e) => return Err(e),
        }
    }
}

/// Offsets by timestamp: -2 earliest, -1 latest.
pub fn list_offsets(
    conn: &mut Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<HashMap<i32, i64>> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let resp = conn.call(&req, (1, 7))?;
    let mut out = HashMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "list offsets {topic}/{}: error {}",
                    p.partition_index,
                    p.error_code
                );
            }
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}

pub fn init_producer_id(conn: &mut Conn) -> Result<ProducerIdentity> {
    // The generated default carries an empty transactional id, which
    // brokers rightly treat as a transactional producer.
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let resp = conn.call(&req, (0, 4))?;
    if resp.error_code != 0 {
        bail!("InitProducerId: error {}", resp.error_code);
    }
    Ok(ProducerIdentity {
        producer_id: resp.producer_id.0,
        producer_epoch: resp.producer_epoch,
    })
}

/// The group coordinator's address.
pub fn find_coordinator(conn: &mut Conn, group: &str) -> Result<String> {
    let v = conn.version(
        spindle_codec::kafka_protocol::messages::ApiKey::FindCoordinator,
        (0, 4),
    )?;
    let mut req = FindCoordinatorRequest::default().with_key_type(0);
    if v >= 4 {
        req = req.with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
    } else {
        req = req.with_key(StrBytes::from_string(group.to_string()));
    }
    let resp = conn.call_version(&req, v)?;
    if v >= 4 {
        let c = resp
            .coordinators
            .first()
            .ok_or_else(|| anyhow!("FindCoordinator: no coordinator"))?;
        if c.error_code != 0 {
            bail!("FindCoordinator: error {}", c.error_code);
        }
        Ok(format!("{}:{}", c.host.as_str(), c.port))
    } else {
        if resp.error_code != 0 {
            bail!("FindCoordinator: error {}", resp.error_code);
        }
        Ok(format!("{}:{}", resp.host.as_str(), resp.port))
    }
}
