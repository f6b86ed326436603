//! OffsetFetch (key 9), v1-9 (v8+ asks about several groups at once; v2+
//! may ask for every committed offset of a group with null topics).
//! Partitions without a commit get offset -1. There are no transactions,
//! so require_stable changes nothing.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors::{self, ErrorCode};
use crate::group_coordinator::{FetchedPartition, GroupCall, GroupResult};

/// Serves OffsetFetch; see the module doc.
pub struct OffsetFetch;

impl Handler for OffsetFetch {
    const KEY: ApiKey = ApiKey::OffsetFetch;
    const VERSIONS: Versions = Versions::new(1, 9);
    type Request = OffsetFetchRequest;

    fn decode(body: BytesMut, version: i16) -> Result<OffsetFetchRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: OffsetFetchRequest) -> Outcome {
        let v = ctx.version;
        if v >= 8 {
            let mut groups = Vec::with_capacity(req.groups.len());
            for g in &req.groups {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let (code, fetched) = fetch_group(ctx, g.group_id.0.to_string(), topics).await;
                groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(code.code())
                        .with_topics(
                            fetched
                                .into_iter()
                                .map(|(t, ps)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(StrBytes::from_string(t)))
                                        .with_partitions(
                                            ps.into_iter()
                                                .map(|p| {
                                                    OffsetFetchResponsePartitions::default()
                                                        .with_partition_index(p.partition)
                                                        .with_committed_offset(p.offset)
                                                        .with_committed_leader_epoch(p.leader_epoch)
                                                        .with_metadata(Some(StrBytes::from_string(
                                                            p.metadata,
                                                        )))
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                );
            }
            return ctx.respond(&OffsetFetchResponse::default().with_groups(groups));
        }
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let (code, fetched) = fetch_group(ctx, req.group_id.0.to_string(), topics.clone()).await;
        // v1 has no group-level error: each partition carries it.
        let fetched = if code != errors::NONE && v < 2 {
            topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| FetchedPartition {
                            partition: p,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                        })
                        .collect();
                    (t, parts)
                })
                .collect()
        } else {
            fetched
        };
        let partition_code = if v < 2 { code } else { errors::NONE };
        let resp = OffsetFetchResponse::default()
            .with_error_code((if v >= 2 { code } else { errors::NONE }).code())
            .with_topics(
                fetched
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p.partition)
                                            .with_committed_offset(p.offset)
                                            .with_committed_leader_epoch(if v >= 5 {
                                                p.leader_epoch
                                            } else {
                                                -1
                                            })
                                            .with_metadata(Some(StrBytes::from_string(p.metadata)))
                                            .with_error_code(partition_code.code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        ctx.respond(&resp)
    }
}

type Fetched = (ErrorCode, Vec<(String, Vec<FetchedPartition>)>);

async fn fetch_group(ctx: &Ctx, group: String, topics: Option<Vec<(String, Vec<i32>)>>) -> Fetched {
    if group.is_empty() {
        return (errors::INVALID_GROUP_ID, Vec::new());
    }
    let call = GroupCall::Fetch {
        group: group.clone(),
        topics,
    };
    match ctx.shard.group_call(&group, call).await {
        GroupResult::Fetch(code, t) => (code, t),
        GroupResult::Code(c) => (c, Vec::new()),
        _ => (errors::UNKNOWN_SERVER_ERROR, Vec::new()),
    }
}
