//! CreateTopics (key 19), v2-7. Topics are placed on the shards with the
//! fewest partitions by the catalog; every partition's log is opened on
//! its owner before the answer, so errors surface here and not on the
//! first produce.

use std::collections::BTreeMap;

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;
use uuid::Uuid;

use super::topics::create_topic;
use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::catalog::topic_config;
use crate::catalog::validate_topic_name;
use crate::errors::{self, ErrorCode};

/// Serves CreateTopics; see the module doc.
pub struct CreateTopics;

impl Handler for CreateTopics {
    const KEY: ApiKey = ApiKey::CreateTopics;
    const VERSIONS: Versions = Versions::new(2, 7);
    type Request = CreateTopicsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<CreateTopicsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: CreateTopicsRequest) -> Outcome {
        let shard = &ctx.shard;
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let mut result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let fail = |code: ErrorCode, msg: String| {
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(&msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            };
            let detailed = ctx.version >= 5;
            let partitions = match t.num_partitions {
                -1 => shard.config.default_partitions,
                n if n > 0 => n as u32,
                n => {
                    results.push(fail(errors::INVALID_PARTITIONS, format!("{n} partitions")));
                    continue;
                }
            };
            if !matches!(t.replication_factor, -1 | 1) || !t.assignments.is_empty() {
                results.push(fail(
                    errors::INVALID_REPLICATION_FACTOR,
                    "a single broker: replication factor 1 only, no assignments".into(),
                ));
                continue;
            }
            let mut configs = BTreeMap::new();
            let mut bad = None;
            for c in &t.configs {
                let key = c.name.to_string();
                let Some(value) = c.value.as_ref().map(|v| v.to_string()) else {
                    continue;
                };
                if let Err(m) = topic_config::validate(&key, &value) {
                    bad = Some(m);
                    break;
                }
                configs.insert(key, value);
            }
            if let Some(m) = bad {
                results.push(fail(errors::INVALID_CONFIG, m));
                continue;
            }
            if let Err(m) = validate_topic_name(&name) {
                results.push(fail(errors::INVALID_TOPIC, m));
                continue;
            }
            if req.validate_only {
                if shard.snapshot().topic(&name).is_some() {
                    results.push(fail(
                        errors::TOPIC_ALREADY_EXISTS,
                        format!("topic {name} exists"),
                    ));
                    continue;
                }
            } else {
                match create_topic(shard, &name, partitions, configs.clone()).await {
                    Ok(meta) if ctx.version >= 7 => {
                        result = result.with_topic_id(Uuid::from_bytes(meta.id))
                    }
                    Ok(_) => {}
                    Err((code, msg)) => {
                        results.push(fail(code, msg));
                        continue;
                    }
                }
            }
            let described = topic_config::describe(&shard.config, &configs)
                .into_iter()
                .map(|(k, v, is_default)| {
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(&k))
                        .with_value(Some(str_bytes(&v)))
                        .with_config_source(if is_default { 5 } else { 1 })
                })
                .collect();
            results.push(if detailed {
                result
                    .with_num_partitions(partitions as i32)
                    .with_replication_factor(1)
                    .with_configs(Some(described))
            } else {
                result
            });
        }
        ctx.respond(&CreateTopicsResponse::default().with_topics(results))
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
