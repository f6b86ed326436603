//! The admin APIs: topics (create, delete, grow, describe configs),
//! cluster metadata and ApiVersions. One broker is the whole cluster.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod metadata;
pub mod topics;

pub const CLUSTER_ID: &str = "spindle-single-node";

/// With no authorizer every operation is allowed; Kafka then reports all
/// of a resource's operations as a bit per AclOperation code. Clients
/// that ask (kafka-python's admin client does) decode these bits.
pub const TOPIC_OPERATIONS: i32 = ops(&[3, 4, 5, 6, 7, 8, 10, 11]);
pub const CLUSTER_OPERATIONS: i32 = ops(&[5, 7, 8, 9, 10, 11, 12]);

const fn ops(codes: &[u32]) -> i32 {
    let mut bits = 0i32;
    let mut i = 0;
    while i < codes.len() {
        bits |= 1 << codes[i];
        i += 1;
    }
    bits
}
