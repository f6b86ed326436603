//! The Kafka wire codec shared by the broker and loadgen. Pure: no I/O, no
//! async, no runtime.

/// Message types generated from Kafka's own schemas; record payloads stay raw.
pub use kafka_protocol;
