//! From a request frame to its outcome: header decode, version check, the
//! API module's handler. Kafka's rules for what cannot be served: an
//! ApiVersions request of an unknown version gets a v0 answer with
//! UNSUPPORTED_VERSION (so the client can retry with one we know); an
//! unknown API key, an API we do not serve, a version outside the served
//! range or a body that does not decode closes the connection.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use spindle_codec::header::{decode_request_header, peek_header_prefix};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::DecodeError;
use tracing::debug;

use super::admin::{
    api_versions, create_partitions, create_topics, delete_topics, describe_cluster,
    describe_configs, metadata,
};
use super::group::{
    delete_groups, describe_groups, find_coordinator, heartbeat, join_group, leave_group,
    list_groups, offset_commit, offset_delete, offset_fetch, sync_group,
};
use super::log::{fetch, init_producer_id, list_offsets, produce};
use super::{Ctx, Outcome, Versions};
use crate::shard::Shard;

/// The API modules and their versions.
pub fn served(key: ApiKey) -> Option<Versions> {
    Some(match key {
        ApiKey::ApiVersions => api_versions::VERSIONS,
        ApiKey::Metadata => metadata::VERSIONS,
        ApiKey::Produce => produce::VERSIONS,
        ApiKey::Fetch => fetch::VERSIONS,
        ApiKey::ListOffsets => list_offsets::VERSIONS,
        ApiKey::CreateTopics => create_topics::VERSIONS,
        ApiKey::DeleteTopics => delete_topics::VERSIONS,
        ApiKey::CreatePartitions => create_partitions::VERSIONS,
        ApiKey::DescribeConfigs => describe_configs::VERSIONS,
        ApiKey::DescribeCluster => describe_cluster::VERSIONS,
        ApiKey::InitProducerId => init_producer_id::VERSIONS,
        ApiKey::FindCoordinator => find_coordinator::VERSIONS,
        ApiKey::JoinGroup => join_group::VERSIONS,
        ApiKey::SyncGroup => sync_group::VERSIONS,
        ApiKey::Heartbeat => heartbeat::VERSIONS,
        ApiKey::LeaveGroup => leave_group::VERSIONS,
        ApiKey::OffsetCommit => offset_commit::VERSIONS,
        ApiKey::OffsetFetch => offset_fetch::VERSIONS,
        ApiKey::ListGroups => list_groups::VERSIONS,
        ApiKey::DescribeGroups => describe_groups::VERSIONS,
        ApiKey::DeleteGroups => delete_groups::VERSIONS,
        ApiKey::OffsetDelete => offset_delete::VERSIONS,
        _ => return None,
    })
}

pub async fn dispatch(shard: Rc<Shard>, mut frame: BytesMut, peer: Option<SocketAddr>) -> Outcome {
    let prefix = match peek_header_prefix(&frame) {
        Ok(p) => p,
        Err(e) => return Outcome::Close(format!("request header: {e}")),
    };
    if prefix.api_key == ApiKey::ApiVersions as i16
        && !api_versions::VERSIONS.serves(prefix.api_version)
    {
        return api_versions::unsupported(prefix.correlation_id);
    }
    let (api_key, header) = match decode_request_header(&mut frame) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("request header: {e}")),
    };
    let version = header.request_api_version;
    match served(api_key) {
        Some(v) if v.serves(version) => {}
        Some(_) => return Outcome::Close(format!("{api_key:?} v{version} is not served")),
        None => return Outcome::Close(format!("{api_key:?} is not served")),
    }
    let ctx = Ctx {
        shard,
        api_key,
        version,
        correlation_id: header.correlation_id,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        peer,
    };
    let result: Result<Outcome, DecodeError> = match api_key {
        ApiKey::ApiVersions => api_versions::handle(&ctx, frame),
        ApiKey::Metadata => metadata::handle(&ctx, frame).await,
        ApiKey::Produce => produce::handle(&ctx, frame).await,
        ApiKey::Fetch => fetch::handle(&ctx, frame).await,
        ApiKey::ListOffsets => list_offsets::handle(&ctx, frame).await,
        ApiKey::CreateTopics => create_topics::handle(&ctx, frame).await,
        ApiKey::DeleteTopics => delete_topics::handle(&ctx, frame).await,
        ApiKey::CreatePartitions => create_partitions::handle(&ctx, frame).await,
        ApiKey::DescribeConfigs => describe_configs::handle(&ctx, frame),
        ApiKey::DescribeCluster => describe_cluster::handle(&ctx, frame),
        ApiKey::InitProducerId => init_producer_id::handle(&ctx, frame).await,
        ApiKey::FindCoordinator => find_coordinator::handle(&ctx, frame).await,
        ApiKey::JoinGroup => join_group::handle(&ctx, frame).await,
        ApiKey::SyncGroup => sync_group::handle(&ctx, frame).await,
        ApiKey::Heartbeat => heartbeat::handle(&ctx, frame).await,
        ApiKey::LeaveGroup => leave_group::handle(&ctx, frame).await,
        ApiKey::OffsetCommit => offset_commit::handle(&ctx, frame).await,
        ApiKey::OffsetFetch => offset_fetch::handle(&ctx, frame).await,
        ApiKey::ListGroups => list_groups::handle(&ctx, frame).await,
        ApiKey::DescribeGroups => describe_groups::handle(&ctx, frame).await,
        ApiKey::DeleteGroups => delete_groups::handle(&ctx, frame).await,
        ApiKey::OffsetDelete => offset_delete::handle(&ctx, frame).await,
        _ => return Outcome::Close(format!("{api_key:?} is not served")),
    };
    match result {
        Ok(o) => o,
        Err(e) => {
            debug!(api = ?api_key, version, error = %e, "undecodable request");
            Outcome::Close(format!("{api_key:?} v{version}: {e}"))
        }
    }
}
