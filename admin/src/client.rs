//! What every command needs from the cluster: the bootstrap connection,
//! the metadata (brokers, controller, topics and their partitions),
//! connections to partition leaders and group coordinators, and offsets
//! by time. Requests for partitions go to their leader, as any Kafka
//! client does, so the commands work on a cluster and not just a broker.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use spindle_codec::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use spindle_codec::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use spindle_codec::kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;

use crate::conn::Conn;
use crate::error::{AdminError, Result};

/// ListOffsets timestamps with a meaning of their own.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    #[serde(skip)]
    pub error_code: i16,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicInfo {
    pub name: String,
    pub internal: bool,
    /// Sorted by partition.
    pub partitions: Vec<PartitionInfo>,
    #[serde(skip)]
    pub error_code: i16,
}

impl TopicInfo {
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .iter()
            .map(|p| p.replicas.len())
            .max()
            .unwrap_or(0)
    }

    pub fn leader(&self, partition: i32) -> Result<i32> {
        let p = self
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| AdminError::Kafka {
                context: format!("topic {} partition {partition}", self.name),
                code: 3,
                message: Some(format!(
                    "the topic has {} partitions",
                    self.partitions.len()
                )),
            })?;
        if p.leader < 0 {
            return Err(AdminError::Kafka {
                context: format!("topic {} partition {partition}", self.name),
                code: 5,
                message: None,
            });
        }
        Ok(p.leader)
    }
}

/// One Metadata answer, as the commands read it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: Option<String>,
    pub controller: i32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicInfo>,
}

impl ClusterView {
    /// The topic, or its error (UNKNOWN_TOPIC_OR_PARTITION, ...).
    pub fn topic(&self, name: &str) -> Result<&TopicInfo> {
        let t = self
            .topics
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| AdminError::Kafka {
                context: format!("topic {name}"),
                code: 3,
                message: None,
            })?;
        AdminError::check(t.error_code, None, || format!("topic {name}"))?;
        Ok(t)
    }
}

pub struct Client {
    bootstrap: Conn,
    timeout: Duration,
    /// Connections to other brokers, by address.
    others: HashMap<String, Conn>,
    /// node id -> address, from the last metadata.
    addrs: HashMap<i32, String>,
}

impl Client {
    pub fn connect(bootstrap: &str, timeout: Duration) -> Result<Client> {
        Ok(Client {
            bootstrap: Conn::connect(bootstrap, timeout)?,
            timeout,
            others: HashMap::new(),
            addrs: HashMap::new(),
        })
    }

    pub fn bootstrap(&mut self) -> &mut Conn {
        &mut self.bootstrap
    }

    /// Metadata for `topics` (all topics when `None`); topics that do not
    /// exist come back with their error code, they are not created unless
    /// `auto_create`.
    pub fn metadata(
        &mut self,
        topics: Option<&[String]>,
        auto_create: bool,
    ) -> Result<ClusterView> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let resp = self.bootstrap.call(&req)?;
        let view = view_of(resp);
        // A single broker is reached at the address the user gave: brokers in
        // containers or behind NAT often advertise a name that does not
        // resolve here.
        let single = view.brokers.len() == 1;
        self.addrs = view
            .brokers
            .iter()
            .map(|b| {
                let addr = if single {
                    self.bootstrap.addr().to_string()
                } else {
                    format!("{}:{}", b.host, b.port)
                };
                (b.id, addr)
            })
            .collect();
        Ok(view)
    }

    /// A connection to broker `node` (from the last metadata).
    pub fn broker(&mut self, node: i32) -> Result<&mut Conn> {
        let addr =
            self.addrs.get(&node).cloned().ok_or_else(|| {
                AdminError::Protocol(format!("broker {node} is not in the metadata"))
            })?;
        self.at(&addr)
    }

    /// A connection to `addr`, the bootstrap one if it is that address.
    pub fn at(&mut self, addr: &str) -> Result<&mut Conn> {
        if addr == self.bootstrap.addr() {
            return Ok(&mut self.bootstrap);
        }
        if !self.others.contains_key(addr) {
            let conn = Conn::connect(addr, self.timeout)?;
            self.others.insert(addr.to_string(), conn);
        }
        self.others
            .get_mut(addr)
            .ok_or_else(|| AdminError::Protocol(format!("no connection to {addr}")))
    }

    /// Node ids and addresses of every broker in the last metadata.
    pub fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.addrs.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The connection to `group`'s coordinator.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Conn> {
        let addr = self.coordinator_addr(group)?;
        self.at(&addr)
    }

    /// The address of `group`'s coordinator, for [`Client::at`].
    pub fn coordinator_addr(&mut self, group: &str) -> Result<String> {
        let v = self.bootstrap.version(ApiKey::FindCoordinator)?;
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req = req.with_coordinator_keys(vec![str_bytes(group)]);
        } else {
            req = req.with_key(str_bytes(group));
        }
        let resp = self.bootstrap.call_version(&req, v)?;
        let ctx = || format!("group {group}: FindCoordinator");
        let (node, host, port) = if v >= 4 {
            let c = resp
                .coordinators
                .first()
                .ok_or_else(|| AdminError::Protocol(format!("{}: no coordinator", ctx())))?;
            AdminError::check(c.error_code, c.error_message.as_deref(), ctx)?;
            (c.node_id.0, c.host.to_string(), c.port)
        } else {
            AdminError::check(resp.error_code, resp.error_message.as_deref(), ctx)?;
            (resp.node_id.0, resp.host.to_string(), resp.port)
        };
        // As for leaders: a single broker is reached where the user said.
        Ok(match self.addrs.get(&node) {
            Some(a) => a.clone(),
            None if self.addrs.is_empty() => self.bootstrap.addr().to_string(),
            None => format!("{host}:{port}"),
        })
    }

    /// The offset of each (topic, partition) at `timestamp` (ms since the
    /// epoch, or [`EARLIEST`], [`LATEST`]): the first offset whose record
    /// timestamp is at or after it, -1 when there is none. Asked of each
    /// partition's leader.
    pub fn offsets_at(
        &mut self,
        view: &ClusterView,
        partitions: &[(String, i32)],
        timestamp: i64,
    ) -> Result<BTreeMap<(String, i32), i64>> {
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for (t, p) in partitions {
            let leader = view.topic(t)?.leader(*p)?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(t)
                .or_default()
                .push(*p);
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    ps.iter()
                                        .map(|&p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let resp = self.broker(leader)?.call(&req)?;
            for t in resp.topics {
                for p in t.partitions {
                    let name = t.name.0.to_string();
                    AdminError::check(p.error_code, None, || {
                        format!("ListOffsets {name}/{}", p.partition_index)
                    })?;
                    out.insert((name, p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }
}

fn view_of(resp: MetadataResponse) -> ClusterView {
    let mut brokers: Vec<BrokerInfo> = resp
        .brokers
        .into_iter()
        .map(|b| BrokerInfo {
            id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut topics: Vec<TopicInfo> = resp
        .topics
        .into_iter()
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: ids(p.replica_nodes),
                    isr: ids(p.isr_nodes),
                    offline_replicas: ids(p.offline_replicas),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            TopicInfo {
                name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                internal: t.is_internal,
                partitions,
                error_code: t.error_code,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterView {
        cluster_id: resp.cluster_id.map(|c| c.to_string()),
        controller: resp.controller_id.0,
        brokers,
        topics,
    }
}
