//! CreatePartitions (key 37), v0-3: a topic's partition count only grows;
//! the new partitions go to the least loaded shards and their logs are
//! opened before the answer.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;
use tracing::info;

use super::topics::open_partitions;
use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::catalog;
use crate::constants::PARTITIONS_PER_TOPIC_MAX;
use crate::errors::{self, ErrorCode};

/// Serves CreatePartitions; see the module doc.
pub struct CreatePartitions;

impl Handler for CreatePartitions {
    const KEY: ApiKey = ApiKey::CreatePartitions;
    const VERSIONS: Versions = Versions::new(0, 3);
    type Request = CreatePartitionsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<CreatePartitionsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: CreatePartitionsRequest) -> Outcome {
        let shard = &ctx.shard;
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |code: ErrorCode, msg: String| {
                result
                    .clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(msg)))
            };
            let Some(current) = shard.snapshot().topic(&name).map(|m| m.owners.len() as i32) else {
                results.push(fail(
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("no topic {name}"),
                ));
                continue;
            };
            if shard.snapshot().topic(&name).is_some_and(|m| m.internal) {
                results.push(fail(
                    errors::INVALID_TOPIC,
                    format!("{name} is internal: its partition count is fixed"),
                ));
                continue;
            }
            if t.assignments.is_some() {
                results.push(fail(
                    errors::INVALID_REQUEST,
                    "manual assignments are not supported".into(),
                ));
                continue;
            }
            if t.count <= current || t.count as u32 > PARTITIONS_PER_TOPIC_MAX {
                results.push(fail(
                    errors::INVALID_PARTITIONS,
                    format!(
                        "topic {name} has {current} partitions; asked for {}",
                        t.count
                    ),
                ));
                continue;
            }
            if req.validate_only {
                results.push(result);
                continue;
            }
            match shard
                .catalog
                .add_partitions(name.clone(), t.count as u32)
                .await
            {
                Ok(_) => match open_partitions(shard, &name, current..t.count).await {
                    Ok(()) => {
                        info!(topic = %name, partitions = t.count, "grew topic");
                        results.push(result)
                    }
                    Err((code, msg)) => results.push(fail(code, msg)),
                },
                Err(e) => results.push(fail(catalog::error_code(&e), e.to_string())),
            }
        }
        ctx.respond(&CreatePartitionsResponse::default().with_results(results))
    }
}
