//! Request headers and response framing for every API. Request header
//! versions (1 classic, 2 flexible with tagged fields) follow the API and
//! version, as `kafka-protocol`'s `ApiKey` knows them; response headers
//! likewise (ApiVersions always answers with header v0).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::{DecodeError, EncodeError};

/// The fixed start of every request header: enough to answer or refuse a
/// request even when the rest does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads the api key, version and correlation id without decoding more.
pub fn peek_header_prefix(frame: &[u8]) -> Result<HeaderPrefix, DecodeError> {
    let mut r = crate::wire::Reader::new(frame);
    Ok(HeaderPrefix {
        api_key: r.i16()?,
        api_version: r.i16()?,
        correlation_id: r.i32()?,
    })
}

/// Decodes the request header at the front of `frame` and leaves `frame`
/// holding the request body. Unknown API keys are an error (Kafka closes
/// the connection for them); the version is not checked here: which
/// versions are served is the server's business.
pub fn decode_request_header(frame: &mut BytesMut) -> Result<(ApiKey, RequestHeader), DecodeError> {
    let prefix = peek_header_prefix(frame)?;
    let api_key = ApiKey::try_from(prefix.api_key).map_err(|()| DecodeError::UnknownApiKey {
        api_key: prefix.api_key,
    })?;
    if prefix.api_version < 0 {
        return Err(DecodeError::Invalid {
            what: "api version",
            value: i64::from(prefix.api_version),
        });
    }
    let header_version = api_key.request_header_version(prefix.api_version);
    if !(1..=2).contains(&header_version) {
        return Err(DecodeError::UnsupportedVersion {
            api: "request header",
            version: header_version,
        });
    }
    // Parsed from the slice, the client id copied out: decoding into the
    // generated type would keep a reference into the frame, and the body
    // could then only be had back as a BytesMut by copying all of it (a
    // whole produce request, every time).
    let mut r = crate::wire::Reader::new(frame);
    r.take(8)?;
    let client_id = r
        .nullable_string(false)?
        .map(|c| StrBytes::from_string(c.to_string()));
    if header_version >= 2 {
        r.skip_tagged_fields()?;
    }
    let len = r.position();
    frame.advance(len);
    let header = RequestHeader::default()
        .with_request_api_key(prefix.api_key)
        .with_request_api_version(prefix.api_version)
        .with_correlation_id(prefix.correlation_id)
        .with_client_id(client_id);
    Ok((api_key, header))
}

/// Decodes a request body with the generated `kafka-protocol` decoder.
/// Trailing bytes are tolerated, as Kafka does.
pub fn decode_body<R: Decodable>(body: BytesMut, version: i16) -> Result<R, DecodeError> {
    let mut bytes = body.freeze();
    R::decode(&mut bytes, version).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Length of the response header for this API and version.
pub fn response_header_len(api_key: ApiKey, version: i16) -> usize {
    if api_key.response_header_version(version) >= 1 {
        5
    } else {
        4
    }
}

/// Writes the response header (correlation id, plus an empty tagged-field
/// section for flexible versions).
pub fn put_response_header(buf: &mut BytesMut, api_key: ApiKey, version: i16, correlation_id: i32) {
    buf.put_i32(correlation_id);
    if api_key.response_header_version(version) >= 1 {
        buf.put_u8(0);
    }
}

/// Encodes a complete response frame: size prefix, header, body.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, EncodeError> {
    let body_len = body
        .compute_size(version)
        .map_err(|e| EncodeError::Message(e.to_string()))?;
    let len = response_header_len(api_key, version) + body_len;
    let len_i32 = i32::try_from(len).map_err(|_| EncodeError::TooLarge(len as u64))?;
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_i32(len_i32);
    put_response_header(&mut buf, api_key, version, correlation_id);
    body.encode(&mut buf, version)
        .map_err(|e| EncodeError::Message(e.to_string()))?;
    if buf.len() != 4 + len {
        return Err(EncodeError::Message(format!(
            "encoded {} bytes, computed {}",
            buf.len(),
            4 + len
        )));
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest, ProduceRequest};
    use proptest::prelude::*;

    fn request_frame(
        key: ApiKey,
        version: i16,
        corr: i32,
        client: Option<&str>,
        body: &impl Encodable,
    ) -> BytesMut {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(client.map(|c| StrBytes::from_string(c.to_string())));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf
    }

    proptest! {
        #[test]
        fn header_round_trip(version in 0i16..=13, corr: i32, client in proptest::option::of("[a-z0-9-]{0,20}")) {
            let req = MetadataRequest::default();
            let mut frame = request_frame(ApiKey::Metadata, version, corr, client.as_deref(), &req);
            let (key, h) = decode_request_header(&mut frame).unwrap();
            prop_assert_eq!(key, ApiKey::Metadata);
            prop_assert_eq!(h.request_api_version, version);
            prop_assert_eq!(h.correlation_id, corr);
            prop_assert_eq!(h.client_id.as_ref().map(|c| c.to_string()), client);
            let back: MetadataRequest = decode_body(frame, version).unwrap();
            prop_assert_eq!(back, req);
        }

        #[test]
        fn header_decode_never_panics(data: Vec<u8>) {
            let mut frame = BytesMut::from(&data[..]);
            let _ = decode_request_header(&mut frame);
        }
    }

    #[test]
    fn the_body_stays_in_the_frame_buffer() {
        // The body handed back is the same memory, not a copy of it.
        let req = ProduceRequest::default();
        let mut frame = request_frame(ApiKey::Produce, 9, 1, Some("c"), &req);
        frame.extend_from_slice(&[7u8; 4096]);
        let end = frame.as_ptr() as usize + frame.len();
        decode_request_header(&mut frame).unwrap();
        assert_eq!(frame.as_ptr() as usize + frame.len(), end);
        assert_eq!(&frame[frame.len() - 4096..], &[7u8; 4096][..]);
    }

    #[test]
    fn unknown_api_key_is_typed() {
        let mut frame = BytesMut::from(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff][..]);
        assert_eq!(
            decode_request_header(&mut frame).unwrap_err(),
            DecodeError::UnknownApiKey { api_key: 0x7f00 }
        );
    }

    #[test]
    fn api_versions_v3_sends_no_default_tagged_fields() {
        // librdkafka before 2.2 misreads tagged fields in this response;
        // Kafka sends none that hold their default, and neither do we.
        let resp = ApiVersionsResponse::default();
        assert_eq!(resp.finalized_features_epoch, -1);
        let bytes = encode_response(ApiKey::ApiVersions, 3, 7, &resp).unwrap();
        // size, correlation id (header v0), error code, empty compact array,
        // throttle time, zero tagged fields.
        assert_eq!(
            &bytes[..],
            &[0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 1, 0, 0, 0, 0, 0][..]
        );
    }
}
