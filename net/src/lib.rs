//! The Spindle broker: a Kafka protocol server, one glommio executor per
//! core. `spindle` (src/main.rs) is a thin wrapper over [`server::run`].
//!
//! Map: [`config`] (flags and TOML), [`server`] (startup, shards,
//! signals), [`shard`] (partition ownership, cross-shard messages),
//! [`listener`] and [`connection`] (the network seam: the only modules
//! naming glommio sockets), [`dispatch`] (frame to API module), one module
//! per Kafka API, [`catalog`] (topic metadata, single writer), [`sendfile`]
//! (cold reads off the reactor), [`limits`] (connection limits, rate-limited
//! connection logs), [`metrics`] (Prometheus `/metrics` on a helper thread),
//! [`repair`] (poisoned logs reopened), [`group_coordinator`] (consumer
//! groups and committed offsets).

pub mod api_versions;
pub mod catalog;
pub mod config;
pub mod constants;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod dispatch;
pub mod errors;
pub mod fetch;
pub mod find_coordinator;
pub mod group_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod metrics;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod server;
pub mod shard;
pub mod sync_group;
pub mod transport;
