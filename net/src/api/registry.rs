//! The one table of served APIs: key, versions, decoder and handler of
//! each. Dispatch, ApiVersions, the per-API labels of the metrics and the
//! request_frame fuzz target all read it; an API is served when, and only
//! when, it is listed here.

use std::future::Future;
use std::pin::Pin;

use bytes::BytesMut;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::DecodeError;
use tracing::debug;

use super::admin::api_versions::ApiVersions;
use super::admin::create_partitions::CreatePartitions;
use super::admin::create_topics::CreateTopics;
use super::admin::delete_topics::DeleteTopics;
use super::admin::describe_cluster::DescribeCluster;
use super::admin::describe_configs::DescribeConfigs;
use super::admin::metadata::Metadata;
use super::group::delete_groups::DeleteGroups;
use super::group::describe_groups::DescribeGroups;
use super::group::find_coordinator::FindCoordinator;
use super::group::heartbeat::Heartbeat;
use super::group::join_group::JoinGroup;
use super::group::leave_group::LeaveGroup;
use super::group::list_groups::ListGroups;
use super::group::offset_commit::OffsetCommit;
use super::group::offset_delete::OffsetDelete;
use super::group::offset_fetch::OffsetFetch;
use super::group::sync_group::SyncGroup;
use super::log::fetch::Fetch;
use super::log::init_producer_id::InitProducerId;
use super::log::list_offsets::ListOffsets;
use super::log::produce::Produce;
use super::{Ctx, Handler, Outcome, Versions};

/// Every served API.
pub static APIS: &[Api] = &[
    // Producing and consuming.
    Api::of::<Produce>(),
    Api::of::<Fetch>(),
    Api::of::<ListOffsets>(),
    Api::of::<InitProducerId>(),
    // Topics, configs, the cluster.
    Api::of::<ApiVersions>(),
    Api::of::<Metadata>(),
    Api::of::<CreateTopics>(),
    Api::of::<DeleteTopics>(),
    Api::of::<CreatePartitions>(),
    Api::of::<DescribeConfigs>(),
    Api::of::<DescribeCluster>(),
    // Consumer groups.
    Api::of::<FindCoordinator>(),
    Api::of::<JoinGroup>(),
    Api::of::<SyncGroup>(),
    Api::of::<Heartbeat>(),
    Api::of::<LeaveGroup>(),
    Api::of::<OffsetCommit>(),
    Api::of::<OffsetFetch>(),
    Api::of::<ListGroups>(),
    Api::of::<DescribeGroups>(),
    Api::of::<DeleteGroups>(),
    Api::of::<OffsetDelete>(),
];

/// A request being served.
pub type Serving<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// One served API, its [`Handler`] as plain data.
pub struct Api {
    pub key: ApiKey,
    pub versions: Versions,
    /// Decodes a body and drops the request: the decoder alone.
    pub decode: fn(BytesMut, i16) -> Result<(), DecodeError>,
    /// Decodes and serves a request; a body that does not decode closes
    /// the connection.
    pub serve: for<'a> fn(&'a Ctx, BytesMut) -> Serving<'a>,
}

impl Api {
    const fn of<H: Handler>() -> Api {
        Api {
            key: H::KEY,
            versions: H::VERSIONS,
            decode: decode::<H>,
            serve: serve::<H>,
        }
    }
}

fn decode<H: Handler>(body: BytesMut, version: i16) -> Result<(), DecodeError> {
    H::decode(body, version).map(drop)
}

fn serve<H: Handler>(ctx: &Ctx, body: BytesMut) -> Serving<'_> {
    Box::pin(async move {
        match H::decode(body, ctx.version) {
            Ok(req) => H::handle(ctx, req).await,
            Err(e) => {
                let (api, version) = (ctx.api_key, ctx.version);
                debug!(?api, version, error = %e, "undecodable request");
                Outcome::Close(format!("{api:?} v{version}: {e}"))
            }
        }
    })
}

/// The entry of `key`, if it is served.
pub fn find(key: ApiKey) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key == key)
}

/// The versions of `key` served, if any.
pub fn served(key: ApiKey) -> Option<Versions> {
    find(key).map(|a| a.versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_is_listed_once_within_what_the_codec_knows() {
        for (i, a) in APIS.iter().enumerate() {
            assert!(
                APIS[..i].iter().all(|b| b.key != a.key),
                "{:?} listed twice",
                a.key
            );
            let known = a.key.valid_versions();
            assert!(
                a.versions.advertised_min <= a.versions.min && a.versions.min <= a.versions.max
            );
            assert!(
                known.min <= a.versions.min && a.versions.max <= known.max,
                "{:?} beyond what the codec knows",
                a.key
            );
        }
        assert_eq!(APIS.len(), 22);
    }
}
