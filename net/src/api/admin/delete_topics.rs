//! DeleteTopics (key 20), v1-6 (v6 may name topics by id). The topic
//! leaves the catalog first, so no new request finds it; then each owner
//! shard deletes its partitions' logs.

use std::collections::BTreeMap;

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;
use tracing::info;
use uuid::Uuid;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::catalog;
use crate::errors;
use crate::group_coordinator::GroupCall;
use crate::shard::ShardMsg;

/// Serves DeleteTopics; see the module doc.
pub struct DeleteTopics;

impl Handler for DeleteTopics {
    const KEY: ApiKey = ApiKey::DeleteTopics;
    const VERSIONS: Versions = Versions::new(1, 6);
    type Request = DeleteTopicsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<DeleteTopicsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: DeleteTopicsRequest) -> Outcome {
        let shard = &ctx.shard;
        // (name if given, id if given)
        let asked: Vec<(Option<String>, Uuid)> = if ctx.version >= 6 {
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            req.topic_names
                .iter()
                .map(|n| (Some(n.0.to_string()), Uuid::nil()))
                .collect()
        };
        let mut responses = Vec::with_capacity(asked.len());
        for (name, id) in asked {
            let snap = shard.snapshot();
            let resolved = match &name {
                Some(n) => snap.topic(n).map(|m| m.name.clone()),
                None => snap.topic_by_id(id.as_bytes()).map(|m| m.name.clone()),
            };
            let v6 = ctx.version >= 6;
            let result = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
                .with_topic_id(if v6 { id } else { Uuid::nil() });
            let Some(topic) = resolved else {
                let code = if name.is_some() {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    errors::UNKNOWN_TOPIC_ID
                };
                responses.push(result.with_error_code(code.code()));
                continue;
            };
            if snap.topic(&topic).is_some_and(|m| m.internal) {
                responses.push(
                    result
                        .with_error_code(errors::INVALID_TOPIC.code())
                        .with_error_message((ctx.version >= 5).then(|| {
                            StrBytes::from_string(format!(
                                "{topic} is internal and cannot be deleted"
                            ))
                        })),
                );
                continue;
            }
            let meta = match shard.catalog.delete_topic(topic.clone()).await {
                Ok(m) => m,
                Err(e) => {
                    responses.push(
                        result
                            .with_error_code(catalog::error_code(&e).code())
                            .with_error_message(
                                (ctx.version >= 5).then(|| StrBytes::from_string(e.to_string())),
                            ),
                    );
                    continue;
                }
            };
            let mut by_owner: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
            for (p, &owner) in meta.owners.iter().enumerate() {
                by_owner.entry(owner).or_default().push(p as i32);
            }
            for (owner, partitions) in by_owner {
                if owner == shard.id {
                    shard.drop_partitions(&topic, &partitions).await;
                } else {
                    let (reply, rx) = flume::bounded(1);
                    let msg = ShardMsg::DropPartitions {
                        topic: topic.clone(),
                        partitions,
                        reply,
                    };
                    if shard.send_to(owner, msg).await.is_ok() {
                        let _ = rx.recv_async().await;
                    }
                }
            }
            // Committed offsets of the topic go too, on every coordinator.
            for owner in shard.coordinator_shards() {
                let call = GroupCall::DropTopic {
                    topic: topic.clone(),
                };
                shard.group_call_on(owner, -1, call).await;
            }
            info!(topic = %topic, "deleted topic");
            responses.push(
                result
                    .with_name(Some(TopicName(StrBytes::from_string(topic))))
                    .with_topic_id(if v6 {
                        Uuid::from_bytes(meta.id)
                    } else {
                        Uuid::nil()
                    })
                    .with_error_code(errors::NONE.code()),
            );
        }
        ctx.respond(&DeleteTopicsResponse::default().with_responses(responses))
    }
}
