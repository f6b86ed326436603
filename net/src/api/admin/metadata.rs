//! Metadata (key 3), v0-12: this broker is every partition's leader.
//! Topics asked for that do not exist are created when auto-creation is on
//! (the broker's setting, and the client's allow_auto_topic_creation from
//! v4).

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;
use uuid::Uuid;

use super::topics::create_topic;
use super::{CLUSTER_ID, CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::catalog::validate_topic_name;
use crate::catalog::TopicMeta;
use crate::errors::{self, ErrorCode};

/// Serves Metadata; see the module doc.
pub struct Metadata;

impl Handler for Metadata {
    const KEY: ApiKey = ApiKey::Metadata;
    const VERSIONS: Versions = Versions::new(0, 12);
    type Request = MetadataRequest;

    fn decode(body: BytesMut, version: i16) -> Result<MetadataRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: MetadataRequest) -> Outcome {
        let shard = &ctx.shard;
        let node = shard.config.node_id;
        // v0: an empty list means all topics; v1+: null means all.
        let wanted = match req.topics {
            Some(t) if !(ctx.version == 0 && t.is_empty()) => Some(t),
            _ => None,
        };
        let auto_create =
            shard.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
        let topic_ops = ctx.version >= 8 && req.include_topic_authorized_operations;
        let cluster_ops =
            (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations;
        let mut topics = Vec::new();
        match wanted {
            None => {
                let snap = shard.snapshot();
                topics.extend(
                    snap.topics
                        .values()
                        .map(|t| topic_entry(ctx.version, topic_ops, node, t)),
                );
            }
            Some(list) => {
                for t in list {
                    let name = t.name.as_ref().map(|n| n.0.to_string());
                    let snap = shard.snapshot();
                    let found = match &name {
                        Some(n) => snap.topic(n).cloned(),
                        None => snap.topic_by_id(t.topic_id.as_bytes()).cloned(),
                    };
                    let entry = match (found, name) {
                        (Some(meta), _) => topic_entry(ctx.version, topic_ops, node, &meta),
                        (None, None) => error_entry(None, t.topic_id, errors::UNKNOWN_TOPIC_ID),
                        (None, Some(n)) if validate_topic_name(&n).is_err() => {
                            error_entry(Some(&n), Uuid::nil(), errors::INVALID_TOPIC)
                        }
                        (None, Some(n)) if auto_create => {
                            let partitions = shard.config.default_partitions;
                            match create_topic(shard, &n, partitions, Default::default()).await {
                                Ok(meta) => topic_entry(ctx.version, topic_ops, node, &meta),
                                // Created meanwhile by another request.
                                Err((code, _)) if code == errors::TOPIC_ALREADY_EXISTS => {
                                    match shard.snapshot().topic(&n) {
                                        Some(meta) => {
                                            topic_entry(ctx.version, topic_ops, node, meta)
                                        }
                                        None => error_entry(
                                            Some(&n),
                                            Uuid::nil(),
                                            errors::UNKNOWN_TOPIC_OR_PARTITION,
                                        ),
                                    }
                                }
                                Err((code, _)) => error_entry(Some(&n), Uuid::nil(), code),
                            }
                        }
                        (None, Some(n)) => {
                            error_entry(Some(&n), Uuid::nil(), errors::UNKNOWN_TOPIC_OR_PARTITION)
                        }
                    };
                    topics.push(entry);
                }
            }
        }
        let (host, port) = &shard.advertised;
        let resp = MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(node))
                .with_host(str_bytes(host))
                .with_port(i32::from(*port))])
            .with_cluster_id((ctx.version >= 2).then(|| str_bytes(CLUSTER_ID)))
            .with_controller_id(BrokerId(if ctx.version >= 1 { node } else { -1 }))
            .with_topics(topics)
            .with_cluster_authorized_operations(if cluster_ops {
                CLUSTER_OPERATIONS
            } else {
                i32::MIN
            });
        ctx.respond(&resp)
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_entry(version: i16, ops: bool, node: i32, t: &TopicMeta) -> MetadataResponseTopic {
    let partitions = (0..t.owners.len() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_error_code(errors::NONE.code())
                .with_partition_index(p)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(errors::NONE.code())
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_topic_id(if version >= 10 {
            Uuid::from_bytes(t.id)
        } else {
            Uuid::nil()
        })
        .with_partitions(partitions)
        .with_is_internal(t.internal && version >= 1)
        .with_topic_authorized_operations(if ops { TOPIC_OPERATIONS } else { i32::MIN })
}

fn error_entry(name: Option<&str>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
}
