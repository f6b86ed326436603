//! The Kafka API layer: the handler contract every API module implements
//! ([`Handler`]: its key, the [`Versions`] it serves, a pure decoder, and
//! a handler taking [`Ctx`] to an [`Outcome`]), the one [`registry`] of
//! served APIs, and the [`dispatch`] from a request frame to its
//! handler. One module per API, grouped by domain: [`log`] (produce and
//! consume), [`admin`] (topics, configs, cluster, ApiVersions) and
//! [`group`] (consumer groups and committed offsets).
//!
//! May import: the shard, catalog and coordinator below it, the codec,
//! errors, constants and config. Nothing below imports an API handler;
//! handlers import only this contract, never the dispatch.

pub mod admin;
pub mod dispatch;
pub mod group;
pub mod log;
pub mod registry;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use spindle_codec::fetch::{Piece, RecordChunk};
use spindle_codec::header::encode_response;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::protocol::Encodable;
use spindle_codec::DecodeError;
use spindle_engine::ReadChunk;

use crate::shard::Shard;

/// Record data of a Fetch response: cached bytes or a file range.
pub struct Chunk(pub ReadChunk);

impl RecordChunk for Chunk {
    fn len_bytes(&self) -> u32 {
        match &self.0 {
            ReadChunk::Memory(b) => b.len() as u32,
            ReadChunk::File(r) => r.len,
        }
    }
}

pub enum Response {
    /// A whole encoded frame.
    Frame(Bytes),
    /// A Fetch response: header bytes and record chunks in wire order.
    Fetch(Vec<Piece<Chunk>>),
}

pub enum Outcome {
    Respond(Response),
    /// No response (Produce with acks=0).
    Silent,
    /// Close the connection (after the responses before this one).
    Close(String),
}

/// The versions of an API this broker serves, and the lowest it
/// advertises (Produce advertises from 0: librdkafka turns compression off
/// when the minimum is higher).
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    pub advertised_min: i16,
    pub min: i16,
    pub max: i16,
}

impl Versions {
    pub const fn new(min: i16, max: i16) -> Versions {
        Versions {
            advertised_min: min,
            min,
            max,
        }
    }
    pub fn serves(&self, v: i16) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

/// What a handler needs to know about its request.
pub struct Ctx {
    pub shard: Rc<Shard>,
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// The request header's client id ("" when null).
    pub client_id: String,
    /// The client's address, if the socket still knows it.
    pub peer: Option<SocketAddr>,
}

impl Ctx {
    pub fn respond<R: Encodable>(&self, body: &R) -> Outcome {
        match encode_response(self.api_key, self.version, self.correlation_id, body) {
            Ok(b) => Outcome::Respond(Response::Frame(b)),
            Err(e) => Outcome::Close(format!("{:?} v{}: {e}", self.api_key, self.version)),
        }
    }
}

/// What every API module implements, as Redpanda's handler.h has it: the
/// key it answers, the versions it serves, a decoder for its request body
/// and the handler. [`registry::APIS`] lists the implementors, once.
pub trait Handler: 'static {
    const KEY: ApiKey;
    const VERSIONS: Versions;
    type Request: 'static;

    /// Decodes a request body. Pure (no I/O, no state): the request_frame
    /// fuzz target runs it on arbitrary bytes.
    fn decode(body: BytesMut, version: i16) -> Result<Self::Request, DecodeError>;

    /// Serves a decoded request.
    fn handle(ctx: &Ctx, req: Self::Request) -> impl Future<Output = Outcome>;
}
