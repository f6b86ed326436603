//! From a request frame to its outcome: header decode, version check, the
//! API module's handler. Kafka's rules for what cannot be served: an
//! ApiVersions request of an unknown version gets a v0 answer with
//! UNSUPPORTED_VERSION (so the client can retry with one we know); an
//! unknown API key, an API we do not serve, a version outside the served
//! range or a body that does not decode closes the connection.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use spindle_codec::header::{decode_request_header, peek_header_prefix};
use spindle_codec::kafka_protocol::messages::ApiKey;

use super::admin::api_versions::{self, ApiVersions};
use super::{registry, Ctx, Handler, Outcome};
use crate::shard::Shard;

pub async fn dispatch(shard: Rc<Shard>, mut frame: BytesMut, peer: Option<SocketAddr>) -> Outcome {
    let prefix = match peek_header_prefix(&frame) {
        Ok(p) => p,
        Err(e) => return Outcome::Close(format!("request header: {e}")),
    };
    if prefix.api_key == ApiKey::ApiVersions as i16
        && !ApiVersions::VERSIONS.serves(prefix.api_version)
    {
        return api_versions::unsupported(prefix.correlation_id);
    }
    let (api_key, header) = match decode_request_header(&mut frame) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("request header: {e}")),
    };
    let version = header.request_api_version;
    let Some(api) = registry::find(api_key) else {
        return Outcome::Close(format!("{api_key:?} is not served"));
    };
    if !api.versions.serves(version) {
        return Outcome::Close(format!("{api_key:?} v{version} is not served"));
    }
    let ctx = Ctx {
        shard,
        api_key,
        version,
        correlation_id: header.correlation_id,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        peer,
    };
    (api.serve)(&ctx, frame).await
}
