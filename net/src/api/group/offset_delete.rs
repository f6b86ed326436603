//! OffsetDelete (key 47), v0: deletes a group's committed offsets of some
//! partitions, unless the group is consuming that topic
//! (GROUP_SUBSCRIBED_TO_TOPIC).

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::{GroupCall, GroupResult};

/// Serves OffsetDelete; see the module doc.
pub struct OffsetDelete;

impl Handler for OffsetDelete {
    const KEY: ApiKey = ApiKey::OffsetDelete;
    const VERSIONS: Versions = Versions::new(0, 0);
    type Request = OffsetDeleteRequest;

    fn decode(body: BytesMut, version: i16) -> Result<OffsetDeleteRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: OffsetDeleteRequest) -> Outcome {
        let group = req.group_id.0.to_string();
        let topics: Vec<(String, Vec<i32>)> = req
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.0.to_string(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let (code, codes) = if group.is_empty() {
            (errors::INVALID_GROUP_ID, Vec::new())
        } else {
            let call = GroupCall::OffsetDelete {
                group: group.clone(),
                topics,
            };
            match ctx.shard.group_call(&group, call).await {
                GroupResult::OffsetDelete(c, codes) => (c, codes),
                GroupResult::Code(c) => (c, Vec::new()),
                _ => (errors::UNKNOWN_SERVER_ERROR, Vec::new()),
            }
        };
        let resp = OffsetDeleteResponse::default()
            .with_error_code(code.code())
            .with_topics(if code != errors::NONE {
                Vec::new()
            } else {
                req.topics
                    .iter()
                    .zip(codes)
                    .map(|(t, tc)| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .zip(tc)
                                    .map(|(p, c)| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(c.code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect()
            });
        ctx.respond(&resp)
    }
}
