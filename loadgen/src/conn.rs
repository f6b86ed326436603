//! One blocking TCP connection to a broker: framing, request headers,
//! version negotiation (ApiVersions), and synchronous calls for the control
//! plane. The produce hot path splits the stream into a writer and a reader
//! (see `producer.rs`) and keeps many requests in flight.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use spindle_codec::frame::frame_size;
use spindle_codec::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use spindle_codec::kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// Largest response frame loadgen accepts (fetch responses are bounded by
/// the max_bytes we ask for; this is a safety net against a bad peer).
pub const RESPONSE_BYTES_MAX: u32 = 256 << 20;
pub const CLIENT_ID: &str = "loadgen";
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    pub stream: TcpStream,
    next_correlation_id: i32,
    /// api key -> (min, max) the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    pub addr: String,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("resolve {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut conn = Conn {
            stream,
            next_correlation_id: 1,
            versions: HashMap::new(),
            addr: addr.to_string(),
        };
        conn.negotiate()?;
        Ok(conn)
    }

    fn negotiate(&mut self) -> Result<()> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("loadgen"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = match self.call_version(&req, 3) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                // A broker without v3 answers in v0; reconnect and ask in v0.
                let fresh = Conn::reconnect_raw(&self.addr)?;
                self.stream = fresh;
                self.call_version(&ApiVersionsRequest::default(), 0)?
            }
        };
        if resp.error_code != 0 {
            bail!("ApiVersions failed with error {}", resp.error_code);
        }
        for k in resp.api_keys {
            self.versions
                .insert(k.api_key, (k.min_version, k.max_version));
        }
        Ok(())
    }

    fn reconnect_raw(addr: &str) -> Result<TcpStream> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(stream)
    }

    /// The highest version both sides speak, within `ours`.
    pub fn version(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16> {
        let (min, max) = self
            .versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| anyhow!("broker does not support {key:?}"))?;
        let v = max.min(ours.1);
        if v < min.max(ours.0) {
            bail!(
                "no common version for {key:?}: broker {min}-{max}, loadgen {}-{}",
                ours.0,
                ours.1
            );
        }
        Ok(v)
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        id
    }

    /// Sends `req` at the negotiated version (within `ours`) and waits for
    /// its response.
    pub fn call<R: Request>(&mut self, req: &R, ours: (i16, i16)) -> Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let v = self.version(key, ours)?;
        self.call_version(req, v)
    }

    pub fn call_version<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        let id = self.next_correlation_id();
        let frame = encode_request(req, version, id)?;
        self.stream.write_all(&frame).context("send request")?;
        let mut body = read_frame(&mut self.stream)?;
        decode_response::<R>(&mut body, version, id)
    }
}

pub fn encode_request<R: Request>(req: &R, version: i16, correlation_id: i32) -> Result<BytesMut> {
    let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let hv = key.request_header_version(version);
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, hv)
        .map_err(|e| anyhow!("encode header: {e}"))?;
    req.encode(&mut buf, version)
        .map_err(|e| anyhow!("encode {key:?} v{version}: {e}"))?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Reads one response frame (without its size prefix).
pub fn read_frame(stream: &mut impl Read) -> Result<Bytes> {
    let mut prefix = [0u8; 4];
    stream
        .read_exact(&mut prefix)
        .context("read response size")?;
    let size = frame_size(prefix, RESPONSE_BYTES_MAX)? as usize;
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).context("read response body")?;
    Ok(Bytes::from(body))
}

/// Decodes the response header (checking the correlation id) and the body.
pub fn decode_response<R: Request>(
    body: &mut Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response> {
    let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
    let got = response_correlation_id(body, key, version)?;
    if got != correlation_id {
        bail!("{key:?}: correlation id {got}, expected {correlation_id}");
    }
    R::Response::decode(body, version)
        .map_err(|e| anyhow!("decode {key:?} v{version} response: {e}"))
}

/// Strips the response header off `body` and returns its correlation id.
pub fn response_correlation_id(body: &mut Bytes, key: ApiKey, version: i16) -> Result<i32> {
    let hv = key.response_header_version(version);
    let header =
        ResponseHeader::decode(body, hv).map_err(|e| anyhow!("decode response header: {e}"))?;
    Ok(header.correlation_id)
}
