//! JoinGroup (key 11), v0-9. The request goes to the group's coordinator
//! shard and may wait there until the rebalance completes (at most the
//! rebalance timeout, capped by GROUP_REBALANCE_TIMEOUT_MS_MAX). v4+
//! members without an id first get MEMBER_ID_REQUIRED with one.

use std::time::Duration;

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::constants::GROUP_REBALANCE_TIMEOUT_MS_MAX;
use crate::group_coordinator::group::{JoinOutcome, JoinParams};
use crate::group_coordinator::{GroupCall, GroupResult};

/// Serves JoinGroup; see the module doc.
pub struct JoinGroup;

impl Handler for JoinGroup {
    const KEY: ApiKey = ApiKey::JoinGroup;
    const VERSIONS: Versions = Versions::new(0, 9);
    type Request = JoinGroupRequest;

    fn decode(body: BytesMut, version: i16) -> Result<JoinGroupRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: JoinGroupRequest) -> Outcome {
        let session = req.session_timeout_ms.max(0) as u64;
        // v0 has no rebalance timeout: the session timeout stands in.
        let rebalance = if ctx.version >= 1 {
            req.rebalance_timeout_ms.max(0) as u64
        } else {
            session
        };
        let params = JoinParams {
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
            client_id: ctx.client_id.clone(),
            client_host: client_host(ctx),
            session_timeout: Duration::from_millis(session),
            rebalance_timeout: Duration::from_millis(rebalance.min(GROUP_REBALANCE_TIMEOUT_MS_MAX)),
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member: ctx.version >= 4,
            member_id_random: rand::random(),
        };
        let group = req.group_id.0.to_string();
        let member_id = params.member_id.clone();
        let outcome = match ctx
            .shard
            .group_call(
                &group,
                GroupCall::Join {
                    group: group.clone(),
                    params,
                },
            )
            .await
        {
            GroupResult::Join(o) => o,
            GroupResult::Code(c) => JoinOutcome::error(c, &member_id),
            other => unreachable_result(&other, &member_id),
        };
        ctx.respond(&response(ctx.version, outcome))
    }
}

/// Kafka's client host: the peer's IP after a slash.
pub fn client_host(ctx: &Ctx) -> String {
    ctx.peer.map(|p| format!("/{}", p.ip())).unwrap_or_default()
}

fn unreachable_result(r: &GroupResult, member_id: &str) -> JoinOutcome {
    tracing::error!(?r, "JoinGroup got an answer of another call");
    JoinOutcome::error(crate::errors::UNKNOWN_SERVER_ERROR, member_id)
}

fn response(v: i16, o: JoinOutcome) -> JoinGroupResponse {
    let s = StrBytes::from_string;
    // Before v7 the protocol name is a non-null string.
    let name = match o.protocol_name {
        Some(n) => Some(s(n)),
        None if v < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(o.error.code())
        .with_generation_id(o.generation)
        .with_protocol_type(o.protocol_type.filter(|_| v >= 7).map(s))
        .with_protocol_name(name)
        .with_leader(s(o.leader))
        .with_skip_assignment(o.skip_assignment && v >= 9)
        .with_member_id(s(o.member_id))
        .with_members(
            o.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.instance_id.filter(|_| v >= 5).map(s))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
