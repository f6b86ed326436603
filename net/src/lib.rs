//! The Spindle broker: a Kafka protocol server, one glommio executor per
//! core. `spindle` (src/main.rs) is a thin wrapper over [`server::run`].
//!
//! Layers, from the network down to the engine (net/README.md says what
//! each may import):
//! - [`transport`]: the network seam, the only modules naming glommio
//!   sockets: listener, connections, sendfile, connection limits, and the
//!   counters of requests, bytes and connections.
//! - [`api`]: the handler contract, the one registry of served APIs, the
//!   dispatch of a frame to its handler, one module per Kafka API.
//! - [`group_coordinator`]: consumer groups and committed offsets, with
//!   the pure state machine of one group.
//! - [`shard`]: the partition logs a shard owns, partition operations on
//!   their owner, the cross-shard mesh, repair of poisoned logs.
//! - [`catalog`]: topic metadata and configs, one writer thread.
//! - [`metrics`]: the Prometheus exposition, the scrape and its HTTP
//!   thread.
//!
//! Beside them: [`server`] (startup, shards, signals), [`config`] (every
//! setting once), [`constants`] (every other bound) and [`errors`] (Kafka
//! error codes).

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
