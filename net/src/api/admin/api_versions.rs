//! ApiVersions (key 18), v0-4. The v3+ response carries tagged fields
//! (supported/finalized features, ZK migration); like Apache Kafka we send
//! none that holds its default value, which librdkafka before 2.2
//! (Debian's kcat) would misread.

use bytes::BytesMut;
use spindle_codec::header::{decode_body, encode_response};
use spindle_codec::kafka_protocol::messages::api_versions_response::ApiVersion;
use spindle_codec::kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use spindle_codec::DecodeError;

use crate::api::registry::served;
use crate::api::{Ctx, Handler, Outcome, Response, Versions};
use crate::errors;

/// Serves ApiVersions; see the module doc.
pub struct ApiVersions;

impl Handler for ApiVersions {
    const KEY: ApiKey = ApiKey::ApiVersions;
    const VERSIONS: Versions = Versions::new(0, 4);
    type Request = ApiVersionsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<ApiVersionsRequest, DecodeError> {
        decode_body(body, version)
    }

    // Decoded only to refuse malformed requests; the client's software
    // name and version change nothing.
    async fn handle(ctx: &Ctx, _req: ApiVersionsRequest) -> Outcome {
        let resp = ApiVersionsResponse::default()
            .with_error_code(errors::NONE.code())
            .with_api_keys(api_keys());
        ctx.respond(&resp)
    }
}

fn api_keys() -> Vec<ApiVersion> {
    ApiKey::iter()
        .filter_map(|k| {
            served(k).map(|v| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(v.advertised_min)
                    .with_max_version(v.max)
            })
        })
        .collect()
}

/// The answer to an ApiVersions request of a version we do not know:
/// v0, UNSUPPORTED_VERSION, and our ranges so the client can pick.
pub fn unsupported(correlation_id: i32) -> Outcome {
    let resp = ApiVersionsResponse::default()
        .with_error_code(errors::UNSUPPORTED_VERSION.code())
        .with_api_keys(api_keys());
    match encode_response(ApiKey::ApiVersions, 0, correlation_id, &resp) {
        Ok(b) => Outcome::Respond(Response::Frame(b)),
        Err(e) => Outcome::Close(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_produce_from_zero_and_kafka_4_ranges() {
        let keys = api_keys();
        let find = |k: ApiKey| {
            keys.iter()
                .find(|a| a.api_key == k as i16)
                .cloned()
                .unwrap()
        };
        assert_eq!(find(ApiKey::Produce).min_version, 0);
        assert!(find(ApiKey::Produce).max_version >= 12);
        assert_eq!(find(ApiKey::Fetch).min_version, 4);
        assert!(find(ApiKey::Fetch).max_version >= 17);
        assert_eq!(find(ApiKey::Metadata).min_version, 0);
        assert!(find(ApiKey::Metadata).max_version >= 12);
        for k in &keys {
            let key = ApiKey::try_from(k.api_key).unwrap();
            let lib = key.valid_versions();
            assert!(
                k.max_version <= lib.max,
                "{key:?} beyond what the codec knows"
            );
        }
    }
}
