//! DescribeCluster (key 60), v0-1: one broker, its own controller.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use super::{CLUSTER_ID, CLUSTER_OPERATIONS};
use crate::api::{Ctx, Handler, Outcome, Versions};

/// Serves DescribeCluster; see the module doc.
pub struct DescribeCluster;

impl Handler for DescribeCluster {
    const KEY: ApiKey = ApiKey::DescribeCluster;
    const VERSIONS: Versions = Versions::new(0, 1);
    type Request = DescribeClusterRequest;

    fn decode(body: BytesMut, version: i16) -> Result<DescribeClusterRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: DescribeClusterRequest) -> Outcome {
        let node = ctx.shard.config.node_id;
        let (host, port) = &ctx.shard.advertised;
        let resp = DescribeClusterResponse::default()
            .with_endpoint_type(if ctx.version >= 1 {
                req.endpoint_type
            } else {
                1
            })
            .with_cluster_id(StrBytes::from_string(CLUSTER_ID.to_string()))
            .with_controller_id(BrokerId(node))
            .with_brokers(vec![DescribeClusterBroker::default()
                .with_broker_id(BrokerId(node))
                .with_host(StrBytes::from_string(host.clone()))
                .with_port(i32::from(*port))])
            .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
                CLUSTER_OPERATIONS
            } else {
                i32::MIN
            });
        ctx.respond(&resp)
    }
}
