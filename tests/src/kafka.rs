//! A minimal blocking Kafka client for black-box tests that need exact
//! requests and error codes: any request type of the kafka-protocol
//! crate, framed and sent over a std TcpStream, its response decoded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use spindle_codec::kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use spindle_codec::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub struct KafkaConn {
    stream: TcpStream,
    correlation_id: i32,
}

impl KafkaConn {
    pub fn connect(addr: &str) -> Result<KafkaConn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        Ok(KafkaConn {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `req` as `key` v`version` and waits for its response.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp> {
        self.send(key, version, req)?;
        self.recv(key, version)
    }

    /// Sends without waiting (for requests answered later, or never).
    pub fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) -> Result<i32> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("spindle-tests")));
        let mut body = BytesMut::new();
        header.encode(&mut body, key.request_header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        Ok(self.correlation_id)
    }

    /// Reads the next response, which must answer `key` v`version`.
    pub fn recv<Resp: Decodable>(&mut self, key: ApiKey, version: i16) -> Result<Resp> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .context("read response size")?;
        let n = i32::from_be_bytes(len);
        if !(0..=(256 << 20)).contains(&n) {
            bail!("response size {n}");
        }
        let mut buf = vec![0u8; n as usize];
        self.stream.read_exact(&mut buf)?;
        let mut b = bytes::Bytes::from(buf);
        let _h = ResponseHeader::decode(&mut b, key.response_header_version(version))?;
        let r = Resp::decode(&mut b, version)?;
        if b.has_remaining() {
            bail!("{} bytes left after the {key:?} response", b.remaining());
        }
        Ok(r)
    }
}
