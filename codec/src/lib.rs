//! The Kafka wire codec shared by the broker and loadgen. Pure: no I/O, no
//! async, no runtime.
//!
//! - [`frame`]: the 4-byte size prefix, checked against a bound before any
//!   buffer is sized from it.
//! - [`header`]: request header decode (v1-v2, flexible versions), response
//!   framing for any `kafka-protocol` message.
//! - [`produce`]: hand-written Produce request decode; record bytes stay
//!   slices of the frame.
//! - [`fetch`]: hand-written Fetch response encode; record chunks stay the
//!   caller's (cached `Bytes`, file ranges) and are never copied.
//! - [`batch`]: the v2 record batch, defined once for the broker, the
//!   engine and loadgen: header layout and checks, CRC-32C, baseOffset and
//!   leader epoch stamped in place, the walk over batches and records, the
//!   batch builder.
//! - [`records`]: whole uncompressed batches, built and read by the broker
//!   for its internal topics only.
//! - [`wire`]: the primitive reader/writer (integers, strings, varints) the
//!   hot paths and the batch format use.
//!
//! The default feature `protocol` brings the Kafka API modules (`frame`,
//! `header`, `produce`, `fetch`) and `kafka-protocol`. The engine builds the
//! crate without it: `batch`, `records` and `wire` alone.

pub mod batch;
#[cfg(feature = "protocol")]
pub mod fetch;
#[cfg(feature = "protocol")]
pub mod frame;
#[cfg(feature = "protocol")]
pub mod header;
#[cfg(feature = "protocol")]
pub mod produce;
pub mod records;
pub mod wire;

/// Message types generated from Kafka's own schemas; record payloads stay raw.
#[cfg(feature = "protocol")]
pub use kafka_protocol;

/// Why a frame or message could not be decoded. Each variant is bad input
/// from a peer, never a bug on our side.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame size {size} is negative or above the limit {max}")]
    FrameSize { size: i64, max: u32 },
    #[error("message truncated: needed {needed} bytes, {left} left")]
    Truncated { needed: usize, left: usize },
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16 },
    #[error("{api} version {version} is not supported")]
    UnsupportedVersion { api: &'static str, version: i16 },
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: i64 },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Why a response could not be encoded (a value out of the wire's range).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("response encoding failed: {0}")]
    Message(String),
    #[error("response of {0} bytes exceeds the frame size limit")]
    TooLarge(u64),
}
