//! CreateTopics (key 19), v2-7. Topics are placed on the shards with the
//! fewest partitions by the catalog; every partition's log is opened on
//! its owner before the answer, so errors surface here and not on the
//! first produce.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use spindle_codec::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;
use tracing::info;
use uuid::Uuid;

use crate::catalog::topic_config;
use crate::catalog::{CatalogError, TopicMeta};
use crate::constants::{PARTITIONS_PER_TOPIC_MAX, TOPIC_NAME_BYTES_MAX};
use crate::dispatch::{Ctx, Outcome, Versions};
use crate::errors;
use crate::shard::{OpReply, PartitionOp, Shard};

pub const VERSIONS: Versions = Versions::new(2, 7);

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name longer than {TOPIC_NAME_BYTES_MAX} bytes"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "topic name {name:?} has characters outside [a-zA-Z0-9._-]"
        ));
    }
    Ok(())
}

pub fn catalog_error_code(e: &CatalogError) -> i16 {
    match e {
        CatalogError::TopicExists(_) => errors::TOPIC_ALREADY_EXISTS,
        CatalogError::UnknownTopic(_) => errors::UNKNOWN_TOPIC_OR_PARTITION,
        CatalogError::InvalidPartitions(_) => errors::INVALID_PARTITIONS,
        CatalogError::Io(_) | CatalogError::Gone => errors::KAFKA_STORAGE_ERROR,
    }
}

/// Opens the logs of `partitions` of a topic on their owners.
pub async fn open_partitions(
    shard: &Rc<Shard>,
    name: &str,
    partitions: std::ops::Range<i32>,
) -> Result<(), (i16, String)> {
    for p in partitions {
        match shard.run_op(name, p, PartitionOp::Open).await {
            OpReply::Opened(Ok(())) => {}
            OpReply::Opened(Err(code)) | OpReply::Error(code) => {
                return Err((code, format!("cannot open partition {p}")))
            }
            _ => return Err((errors::UNKNOWN_SERVER_ERROR, "unexpected reply".into())),
        }
    }
    Ok(())
}

/// Creates a topic (validated by the caller or here) and opens its logs.
pub async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    partitions: u32,
    configs: BTreeMap<String, String>,
) -> Result<Arc<TopicMeta>, (i16, String)> {
    validate_topic_name(name).map_err(|m| (errors::INVALID_TOPIC, m))?;
    if partitions == 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
        return Err((
            errors::INVALID_PARTITIONS,
            format!("partitions must be 1..={PARTITIONS_PER_TOPIC_MAX}"),
        ));
    }
    let meta = shard
        .catalog
        .create_topic(name.to_string(), partitions, configs)
        .await
        .map_err(|e| (catalog_error_code(&e), e.to_string()))?;
    info!(topic = name, partitions, "created topic");
    open_partitions(shard, name, 0..partitions as i32).await?;
    Ok(meta)
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub async fn handle(ctx: &Ctx, body: BytesMut) -> Result<Outcome, DecodeError> {
    let req: CreateTopicsRequest = decode_body(body, ctx.version)?;
    let shard = &ctx.shard;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let fail = |code: i16, msg: String| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code)
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
    Ok(ctx.respond(&CreateTopicsResponse::default().with_topics(results)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", "ü"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }
}
