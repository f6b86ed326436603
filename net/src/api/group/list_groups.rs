//! ListGroups (key 16), v0-5 (v4+ filters by state, v5+ by type: every
//! group here is "classic"). Asks every shard that coordinates groups.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::list_groups_response::ListedGroup;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::{GroupCall, GroupResult, Listed};

/// Serves ListGroups; see the module doc.
pub struct ListGroups;

impl Handler for ListGroups {
    const KEY: ApiKey = ApiKey::ListGroups;
    const VERSIONS: Versions = Versions::new(0, 5);
    type Request = ListGroupsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<ListGroupsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: ListGroupsRequest) -> Outcome {
        let v = ctx.version;
        let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
        let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
        let mut code = errors::NONE;
        let mut all: Vec<Listed> = Vec::new();
        for owner in ctx.shard.coordinator_shards() {
            match ctx.shard.group_call_on(owner, -1, GroupCall::List).await {
                GroupResult::List(l) => all.extend(l),
                GroupResult::Code(c) => code = c,
                _ => code = errors::UNKNOWN_SERVER_ERROR,
            }
        }
        let keep = |g: &Listed| {
            (states.is_empty() || v < 4 || states.contains(&g.state.to_lowercase()))
                && (types.is_empty() || v < 5 || types.iter().any(|t| t == GROUP_TYPE))
        };
        let groups = all
            .into_iter()
            .filter(keep)
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                    .with_protocol_type(StrBytes::from_string(g.protocol_type))
                    .with_group_state(if v >= 4 {
                        StrBytes::from_static_str(g.state)
                    } else {
                        StrBytes::default()
                    })
                    .with_group_type(if v >= 5 {
                        StrBytes::from_static_str(GROUP_TYPE)
                    } else {
                        StrBytes::default()
                    })
            })
            .collect();
        ctx.respond(
            &ListGroupsResponse::default()
                .with_error_code(code.code())
                .with_groups(groups),
        )
    }
}

const GROUP_TYPE: &str = "classic";
