//! The network seam: the only modules that name glommio's socket types.
//! A swap of runtime touches these alone.
//!
//! [`listener`] accepts on shard 0 and hands each connection to the shard
//! with the fewest; [`connection`] reads frames, runs each request through
//! the API dispatch and writes the responses in order; [`sendfile`]
//! sends cold file ranges off the reactor; [`limits`] holds the connection
//! limits and rate-limited connection logs; [`metrics`] counts requests,
//! bytes and connection events and reports them.
//!
//! May import: the shard (to serve connections on it), the API dispatch
//! entry and contract types, metrics counters, constants and config.

pub mod connection;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod sendfile;
