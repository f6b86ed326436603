//! What the topic APIs share: creating a topic (CreateTopics, and
//! Metadata when it auto-creates) and opening new partitions' logs on
//! their owners (also CreatePartitions).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use tracing::info;

use crate::catalog::{self, validate_topic_name, TopicMeta};
use crate::constants::PARTITIONS_PER_TOPIC_MAX;
use crate::errors::{self, ErrorCode};
use crate::shard::{OpReply, PartitionOp, Shard};

/// Opens the logs of `partitions` of a topic on their owners.
pub async fn open_partitions(
    shard: &Rc<Shard>,
    name: &str,
    partitions: std::ops::Range<i32>,
) -> Result<(), (ErrorCode, String)> {
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
) -> Result<Arc<TopicMeta>, (ErrorCode, String)> {
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
        .map_err(|e| (catalog::error_code(&e), e.to_string()))?;
    info!(topic = name, partitions, "created topic");
    open_partitions(shard, name, 0..partitions as i32).await?;
    Ok(meta)
}
