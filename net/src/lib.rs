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

pub mod api;
pub mod catalog;
pub mod config;
pub mod constants;
pub mod errors;
pub mod group_coordinator;
pub mod metrics;
pub mod server;
pub mod shard;
pub mod transport;
