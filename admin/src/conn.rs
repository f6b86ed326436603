//! One blocking request/response connection to a broker: framing,
//! correlation ids, and the version of each API negotiated by ApiVersions
//! (the highest both sides speak). An admin command sends one request and
//! waits for its answer, so there is no pipelining here; loadgen keeps its
//! own connection, tuned for many requests in flight.
//!
//! Every API is checked against the broker's ApiVersions before it is
//! sent: a broker closes the connection on an API it does not serve, and
//! "connection reset" would tell the user nothing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use spindle_codec::frame::frame_size;
use spindle_codec::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader,
};
use spindle_codec::kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use crate::error::{AdminError, Result};
use crate::versions;

/// Largest response accepted: a fetch answer is bounded by what we ask for
/// (see `consume`), this only guards against a bad peer.
pub const RESPONSE_BYTES_MAX: u32 = 256 << 20;
pub const CLIENT_ID: &str = "spindle-admin";

pub struct Conn {
    stream: TcpStream,
    addr: String,
    next_correlation_id: i32,
    /// api key -> the broker's (min, max).
    broker_versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    /// Connects and negotiates versions; `timeout` bounds the connect and
    /// every read and write after it.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Conn> {
        let stream = open(addr, timeout)?;
        let mut conn = Conn {
            stream,
            addr: addr.to_string(),
            next_correlation_id: 1,
            broker_versions: HashMap::new(),
        };
        let resp = match conn.call_version(&api_versions_request(), 3) {
            Ok(r) if r.error_code == 0 => r,
            // A broker without v3 answers in v0 (or closes): ask again in v0
            // on a fresh connection, as Kafka's clients do.
            _ => {
                conn.stream = open(addr, timeout)?;
                conn.call_version(&ApiVersionsRequest::default(), 0)?
            }
        };
        AdminError::check(resp.error_code, None, || format!("{addr}: ApiVersions"))?;
        for k in resp.api_keys {
            conn.broker_versions
                .insert(k.api_key, (k.min_version, k.max_version));
        }
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the broker serves `key` at a version this client speaks.
    pub fn supports(&self, key: ApiKey) -> bool {
        self.version(key).is_ok()
    }

    /// The highest version of `key` both sides speak.
    pub fn version(&self, key: ApiKey) -> Result<i16> {
        let unsupported = || AdminError::Unsupported(format!("{key:?}"));
        let (min, max) = self
            .broker_versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(unsupported)?;
        let (ours_min, ours_max) = versions::ours(key).ok_or_else(unsupported)?;
        let v = max.min(ours_max);
        if v < min.max(ours_min) {
            return Err(AdminError::Unsupported(format!(
                "{key:?} at a version this client speaks (broker {min}-{max}, client {ours_min}-{ours_max})"
            )));
        }
        Ok(v)
    }

    /// Sends `req` at the negotiated version and waits for the answer.
    pub fn call<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        let v = self.version(api_key::<R>()?)?;
        self.call_version(req, v)
    }

    /// Sends `req` at `version` and waits for the answer.
    pub fn call_version<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        let id = self.send_version(req, version)?;
        let mut body = self.read_frame()?;
        let key = api_key::<R>()?;
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| self.malformed(key, version, e))?;
        if header.correlation_id != id {
            return Err(AdminError::Protocol(format!(
                "{}: {key:?} answered with correlation id {}, expected {id}",
                self.addr, header.correlation_id
            )));
        }
        R::Response::decode(&mut body, version).map_err(|e| self.malformed(key, version, e))
    }

    /// Sends `req` at the negotiated version without waiting: for Produce
    /// with acks=0, which the broker never answers.
    pub fn send<R: Request>(&mut self, req: &R) -> Result<()> {
        let v = self.version(api_key::<R>()?)?;
        self.send_version(req, v).map(|_| ())
    }

    fn send_version<R: Request>(&mut self, req: &R, version: i16) -> Result<i32> {
        let key = api_key::<R>()?;
        let id = self.next_correlation_id;
        self.next_correlation_id = id.wrapping_add(1).max(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0; 4]);
        let encoded = header
            .encode(&mut buf, key.request_header_version(version))
            .and_then(|()| req.encode(&mut buf, version));
        // Our own request does not fit the version: a bug of this client.
        encoded.map_err(|e| AdminError::Protocol(format!("encode {key:?} v{version}: {e}")))?;
        let len = u32::try_from(buf.len() - 4)
            .map_err(|_| AdminError::Protocol(format!("{key:?} request too large")))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream
            .write_all(&buf)
            .map_err(|source| AdminError::Io {
                addr: self.addr.clone(),
                what: "send request",
                source,
            })?;
        Ok(id)
    }

    fn read_frame(&mut self) -> Result<Bytes> {
        let io = |addr: &str, source| AdminError::Io {
            addr: addr.to_string(),
            what: "read response",
            source,
        };
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .map_err(|e| io(&self.addr, e))?;
        let size = frame_size(prefix, RESPONSE_BYTES_MAX)
            .map_err(|e| AdminError::Protocol(format!("{}: {e}", self.addr)))?;
        let mut body = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| io(&self.addr, e))?;
        Ok(Bytes::from(body))
    }

    fn malformed(&self, key: ApiKey, version: i16, e: impl std::fmt::Display) -> AdminError {
        AdminError::Protocol(format!(
            "{}: malformed {key:?} v{version} response: {e}",
            self.addr
        ))
    }
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
}

fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY)
        .map_err(|()| AdminError::Protocol(format!("unknown api key {}", R::KEY)))
}

fn open(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let connect_err = |source| AdminError::Connect {
        addr: addr.to_string(),
        source,
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(connect_err)?
        .next()
        .ok_or_else(|| {
            connect_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the name resolves to no address",
            ))
        })?;
    let stream = TcpStream::connect_timeout(&sock, timeout).map_err(connect_err)?;
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(timeout)))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    setup.map_err(connect_err)?;
    Ok(stream)
}
