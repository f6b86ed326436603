//! SyncGroup (key 14), v0-5. Followers wait on the coordinator shard for
//! the leader's assignment; every SyncGroup of a generation is answered
//! once that assignment is durable in the offsets log.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::group::{SyncOutcome, SyncParams};
use crate::group_coordinator::{GroupCall, GroupResult};

/// Serves SyncGroup; see the module doc.
pub struct SyncGroup;

impl Handler for SyncGroup {
    const KEY: ApiKey = ApiKey::SyncGroup;
    const VERSIONS: Versions = Versions::new(0, 5);
    type Request = SyncGroupRequest;

    fn decode(body: BytesMut, version: i16) -> Result<SyncGroupRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: SyncGroupRequest) -> Outcome {
        let params = SyncParams {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
            generation: req.generation_id,
            protocol_type: req.protocol_type.as_ref().map(|t| t.to_string()),
            protocol_name: req.protocol_name.as_ref().map(|n| n.to_string()),
            assignments: req
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        };
        let group = req.group_id.0.to_string();
        let o = match ctx
            .shard
            .group_call(
                &group,
                GroupCall::Sync {
                    group: group.clone(),
                    params,
                },
            )
            .await
        {
            GroupResult::Sync(o) => o,
            GroupResult::Code(c) => SyncOutcome::error(c),
            _ => SyncOutcome::error(errors::UNKNOWN_SERVER_ERROR),
        };
        let v = ctx.version;
        let resp = SyncGroupResponse::default()
            .with_error_code(o.error.code())
            .with_protocol_type(
                o.protocol_type
                    .filter(|_| v >= 5)
                    .map(StrBytes::from_string),
            )
            .with_protocol_name(
                o.protocol_name
                    .filter(|_| v >= 5)
                    .map(StrBytes::from_string),
            )
            .with_assignment(o.assignment);
        ctx.respond(&resp)
    }
}
