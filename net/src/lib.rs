//! The Spindle broker: a Kafka protocol server, one glommio executor per
//! core. `spindle` (src/main.rs) is a thin wrapper over [`server::run`].
//!
//! Map: [`config`] (flags and TOML), [`server`] (startup, shards,
//! signals), [`shard`] (partition ownership, cross-shard messages),
//! [`listener`] and [`connection`] (the network seam: the only modules
//! naming glommio sockets), [`dispatch`] (frame to API module), one module
//! per Kafka API, [`catalog`] (topic metadata, single writer), [`sendfile`]
//! (cold reads off the reactor), [`repair`] (poisoned logs reopened).

pub mod api_versions;
pub mod catalog;
pub mod config;
pub mod connection;
pub mod constants;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod dispatch;
pub mod errors;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod listener;
pub mod metadata;
pub mod produce;
pub mod repair;
pub mod sendfile;
pub mod server;
pub mod shard;
pub mod topic_config;
