//! Heartbeat (key 12), v0-4: keeps a member's session alive and tells it
//! when to rejoin (REBALANCE_IN_PROGRESS).

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::{GroupCall, GroupResult};

/// Serves Heartbeat; see the module doc.
pub struct Heartbeat;

impl Handler for Heartbeat {
    const KEY: ApiKey = ApiKey::Heartbeat;
    const VERSIONS: Versions = Versions::new(0, 4);
    type Request = HeartbeatRequest;

    fn decode(body: BytesMut, version: i16) -> Result<HeartbeatRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: HeartbeatRequest) -> Outcome {
        let group = req.group_id.0.to_string();
        let call = GroupCall::Heartbeat {
            group: group.clone(),
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
            generation: req.generation_id,
        };
        let code = match ctx.shard.group_call(&group, call).await {
            GroupResult::Code(c) => c,
            _ => errors::UNKNOWN_SERVER_ERROR,
        };
        ctx.respond(&HeartbeatResponse::default().with_error_code(code.code()))
    }
}
