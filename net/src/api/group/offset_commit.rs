//! OffsetCommit (key 8), v2-9. Answered once the commit records are
//! durable in the offsets log under the broker's flush mode; commits for
//! unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION and are
//! not written.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::{CommitPartition, CommitTopic, GroupCall, GroupResult};

/// Serves OffsetCommit; see the module doc.
pub struct OffsetCommit;

impl Handler for OffsetCommit {
    const KEY: ApiKey = ApiKey::OffsetCommit;
    const VERSIONS: Versions = Versions::new(2, 9);
    type Request = OffsetCommitRequest;

    fn decode(body: BytesMut, version: i16) -> Result<OffsetCommitRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: OffsetCommitRequest) -> Outcome {
        let topics: Vec<CommitTopic> = req
            .topics
            .iter()
            .map(|t| CommitTopic {
                name: t.name.0.to_string(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: if ctx.version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    })
                    .collect(),
            })
            .collect();
        let group = req.group_id.0.to_string();
        let call = GroupCall::Commit {
            group: group.clone(),
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
            generation: req.generation_id_or_member_epoch,
            topics: topics.clone(),
        };
        let codes = match ctx.shard.group_call(&group, call).await {
            GroupResult::Commit(c) => c,
            GroupResult::Code(c) => topics.iter().map(|t| vec![c; t.partitions.len()]).collect(),
            _ => topics
                .iter()
                .map(|t| vec![errors::UNKNOWN_SERVER_ERROR; t.partitions.len()])
                .collect(),
        };
        let resp = OffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .zip(codes)
                .map(|(t, tc)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .zip(tc)
                                .map(|(p, c)| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(c.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        ctx.respond(&resp)
    }
}
