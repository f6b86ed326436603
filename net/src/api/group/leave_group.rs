//! LeaveGroup (key 13), v0-5 (v3+ removes a batch of members, by member
//! id or group.instance.id).

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::leave_group_response::MemberResponse;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::{GroupCall, GroupResult};

/// Serves LeaveGroup; see the module doc.
pub struct LeaveGroup;

impl Handler for LeaveGroup {
    const KEY: ApiKey = ApiKey::LeaveGroup;
    const VERSIONS: Versions = Versions::new(0, 5);
    type Request = LeaveGroupRequest;

    fn decode(body: BytesMut, version: i16) -> Result<LeaveGroupRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: LeaveGroupRequest) -> Outcome {
        let v = ctx.version;
        let members: Vec<(String, Option<String>)> = if v >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let group = req.group_id.0.to_string();
        let call = GroupCall::Leave {
            group: group.clone(),
            members: members.clone(),
        };
        let (code, codes) = match ctx.shard.group_call(&group, call).await {
            GroupResult::Leave(c, codes) => (c, codes),
            GroupResult::Code(c) => (c, vec![c; members.len()]),
            _ => (errors::UNKNOWN_SERVER_ERROR, Vec::new()),
        };
        let resp = if v >= 3 {
            LeaveGroupResponse::default()
                .with_error_code(code.code())
                .with_members(
                    members
                        .into_iter()
                        .zip(codes)
                        .map(|((m, i), c)| {
                            MemberResponse::default()
                                .with_member_id(StrBytes::from_string(m))
                                .with_group_instance_id(i.map(StrBytes::from_string))
                                .with_error_code(c.code())
                        })
                        .collect(),
                )
        } else {
            // One member: its code is the answer.
            let member_code = codes.first().copied().unwrap_or(code);
            LeaveGroupResponse::default().with_error_code(
                (if code != errors::NONE {
                    code
                } else {
                    member_code
                })
                .code(),
            )
        };
        ctx.respond(&resp)
    }
}
