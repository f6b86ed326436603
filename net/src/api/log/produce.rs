//! Produce (key 0): served v3-12, advertised from v0 (librdkafka disables
//! compression when the advertised minimum is above 0; v0-2 requests
//! carry pre-v2 message sets, which close the connection as Kafka 4 does).
//! The request is decoded by hand so each partition's batches stay a slice
//! of the request frame, moved to the owner shard and into the log.
//! acks=0 gets no response; acks=1 and -1 are answered once the engine
//! acknowledges (durable as the flush mode says, on this single replica).

use std::rc::Rc;

use bytes::BytesMut;
use spindle_codec::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{ProduceResponse, TopicName};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::produce::{decode_produce, ProduceRequest};
use spindle_codec::DecodeError;
use tracing::debug;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors::{self, ErrorCode};
use crate::shard::{OpReply, PartitionOp};

/// Serves Produce; see the module doc.
pub struct Produce;

impl Handler for Produce {
    const KEY: ApiKey = ApiKey::Produce;
    const VERSIONS: Versions = Versions {
        advertised_min: 0,
        min: 3,
        max: 12,
    };
    type Request = ProduceRequest;

    fn decode(body: BytesMut, version: i16) -> Result<ProduceRequest, DecodeError> {
        decode_produce(body, version)
    }

    async fn handle(ctx: &Ctx, req: ProduceRequest) -> Outcome {
        let transactional = req.transactional_id.is_some();
        // Start every partition's append before awaiting any: the appends run
        // concurrently on their owners, and (spawned in order) reach each log
        // in request order. Detached, so a closed connection does not cancel
        // an append half way.
        let mut topics = Vec::with_capacity(req.topics.len());
        let snap = ctx.shard.snapshot();
        for topic in req.topics {
            let mut parts = Vec::with_capacity(topic.partitions.len());
            let internal = snap.topic(&topic.name).is_some_and(|t| t.internal);
            for p in topic.partitions {
                let pending = match p.records {
                    _ if internal => Pending::Done(
                        errors::INVALID_TOPIC,
                        Some(format!(
                            "{} is internal: only the broker writes it",
                            topic.name
                        )),
                    ),
                    _ if transactional => Pending::Done(
                        errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                        Some("transactions are not supported".into()),
                    ),
                    None => Pending::Done(errors::CORRUPT_MESSAGE, Some("null records".into())),
                    Some(r) if r.is_empty() => {
                        Pending::Done(errors::CORRUPT_MESSAGE, Some("empty records".into()))
                    }
                    Some(records) => {
                        let shard = Rc::clone(&ctx.shard);
                        let name = topic.name.clone();
                        let index = p.index;
                        Pending::Running(
                            glommio::spawn_local(async move {
                                shard
                                    .run_op(&name, index, PartitionOp::Append(records))
                                    .await
                            })
                            .detach(),
                        )
                    }
                };
                parts.push((p.index, pending));
            }
            topics.push((topic.name, parts));
        }
        let mut responses = Vec::with_capacity(topics.len());
        for (name, parts) in topics {
            let mut partition_responses = Vec::with_capacity(parts.len());
            for (index, pending) in parts {
                let (code, message, base, start) = match pending {
                    Pending::Done(code, m) => (code, m, -1, -1),
                    Pending::Running(task) => match task.await {
                        Some(OpReply::Appended(Ok(info))) => {
                            (errors::NONE, None, info.base_offset, info.log_start_offset)
                        }
                        Some(OpReply::Appended(Err((code, m)))) => {
                            debug!(topic = %name, partition = index, error = %m, "append refused");
                            (code, Some(m), -1, -1)
                        }
                        Some(OpReply::Error(code)) => (code, None, -1, -1),
                        _ => (errors::UNKNOWN_SERVER_ERROR, None, -1, -1),
                    },
                };
                let v = ctx.version;
                partition_responses.push(
                    PartitionProduceResponse::default()
                        .with_index(index)
                        .with_error_code(code.code())
                        .with_base_offset(base)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(if v >= 5 { start } else { -1 })
                        .with_error_message(message.filter(|_| v >= 8).map(StrBytes::from_string)),
                );
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partition_responses(partition_responses),
            );
        }
        if req.acks == 0 {
            return Outcome::Silent;
        }
        ctx.respond(&ProduceResponse::default().with_responses(responses))
    }
}

enum Pending {
    Done(ErrorCode, Option<String>),
    Running(glommio::task::JoinHandle<OpReply>),
}
