//! Heartbeat (key 12), v0-4: keeps a member's session alive and tells it
//! when to rejoin (REBALANCE_IN_PROGRESS).

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use spindle_codec::DecodeError;

use crate::api::{Ctx, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::{GroupCall, GroupResult};

pub const VERSIONS: Versions = Versions::new(0, 4);

pub async fn handle(ctx: &Ctx, body: BytesMut) -> Result<Outcome, DecodeError> {
    let req: HeartbeatRequest = decode_body(body, ctx.version)?;
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
    Ok(ctx.respond(&HeartbeatResponse::default().with_error_code(code)))
}
