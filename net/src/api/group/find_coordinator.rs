//! FindCoordinator (key 10), v0-6 (v4+ asks for several keys at once).
//! This single broker coordinates every group; the answer names it once
//! the offsets topic exists. Transactions are not supported, so
//! transaction coordinators are refused as InitProducerId refuses
//! transactional ids.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::find_coordinator_response::Coordinator;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors::{self, ErrorCode};
use crate::group_coordinator;

/// Serves FindCoordinator; see the module doc.
pub struct FindCoordinator;

impl Handler for FindCoordinator {
    const KEY: ApiKey = ApiKey::FindCoordinator;
    const VERSIONS: Versions = Versions::new(0, 6);
    type Request = FindCoordinatorRequest;

    fn decode(body: BytesMut, version: i16) -> Result<FindCoordinatorRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: FindCoordinatorRequest) -> Outcome {
        let node = ctx.shard.config.node_id;
        let (host, port) = ctx.shard.advertised.clone();
        let v = ctx.version;
        let mut resp = FindCoordinatorResponse::default();
        if v >= 4 {
            resp.coordinators = req
                .coordinator_keys
                .iter()
                .map(|k| {
                    let (code, msg) = check(ctx, k, req.key_type);
                    let ok = code == errors::NONE;
                    Coordinator::default()
                        .with_key(k.clone())
                        .with_node_id(BrokerId(if ok { node } else { -1 }))
                        .with_host(StrBytes::from_string(if ok {
                            host.clone()
                        } else {
                            String::new()
                        }))
                        .with_port(if ok { i32::from(port) } else { -1 })
                        .with_error_code(code.code())
                        .with_error_message(msg.map(StrBytes::from_static_str))
                })
                .collect();
        } else {
            let (code, msg) = check(ctx, &req.key, if v >= 1 { req.key_type } else { 0 });
            let ok = code == errors::NONE;
            resp = resp
                .with_error_code(code.code())
                .with_error_message(msg.filter(|_| v >= 1).map(StrBytes::from_static_str))
                .with_node_id(BrokerId(if ok { node } else { -1 }))
                .with_host(StrBytes::from_string(if ok { host } else { String::new() }))
                .with_port(if ok { i32::from(port) } else { -1 });
        }
        ctx.respond(&resp)
    }
}

const KEY_TYPE_GROUP: i8 = 0;

/// The error, and its message, for one key.
fn check(ctx: &Ctx, key: &str, key_type: i8) -> (ErrorCode, Option<&'static str>) {
    if key_type != KEY_TYPE_GROUP {
        return (
            errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            Some("only group coordinators are served (no transactions)"),
        );
    }
    if key.is_empty() {
        return (errors::INVALID_REQUEST, Some("empty group id"));
    }
    match group_coordinator::route(&ctx.shard.snapshot(), key) {
        Some(_) => (errors::NONE, None),
        None => (errors::COORDINATOR_NOT_AVAILABLE, None),
    }
}
