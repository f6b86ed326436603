//! The versions of each API this client speaks. The connection uses the
//! highest one the broker also serves. The floors are the oldest versions
//! Kafka 4 still serves (KIP-896), so any broker of the last years is
//! reached; the ceilings stop where a version changes what a request
//! means, not just adds fields: Produce 13 and Fetch 13 name topics by id
//! (from Metadata v10+), OffsetFetch 8 batches groups, FindCoordinator 5+
//! and ListGroups 5+ bring share groups and type filters.

use spindle_codec::kafka_protocol::messages::ApiKey;

/// (min, max) of `key` for this client, `None` for an API it never sends.
pub fn ours(key: ApiKey) -> Option<(i16, i16)> {
    Some(match key {
        ApiKey::ApiVersions => (0, 3),
        ApiKey::Metadata => (1, 12),
        ApiKey::Produce => (3, 12),
        ApiKey::Fetch => (4, 12),
        ApiKey::ListOffsets => (1, 9),
        ApiKey::CreateTopics => (2, 7),
        ApiKey::DeleteTopics => (1, 6),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DescribeConfigs => (1, 4),
        ApiKey::IncrementalAlterConfigs => (0, 1),
        ApiKey::AlterConfigs => (0, 2),
        ApiKey::FindCoordinator => (0, 4),
        ApiKey::ListGroups => (0, 4),
        ApiKey::DescribeGroups => (0, 5),
        ApiKey::DeleteGroups => (0, 2),
        ApiKey::OffsetFetch => (1, 7),
        ApiKey::OffsetCommit => (2, 8),
        ApiKey::JoinGroup => (2, 7),
        ApiKey::SyncGroup => (0, 5),
        ApiKey::Heartbeat => (0, 4),
        ApiKey::LeaveGroup => (0, 4),
        _ => return None,
    })
}
