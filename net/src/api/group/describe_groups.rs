//! DescribeGroups (key 15), v0-6. A group that does not exist is "Dead"
//! (v6+: with GROUP_ID_NOT_FOUND), as Kafka answers.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors::{self, ErrorCode};
use crate::group_coordinator::{Described, GroupCall, GroupResult};

/// Serves DescribeGroups; see the module doc.
pub struct DescribeGroups;

impl Handler for DescribeGroups {
    const KEY: ApiKey = ApiKey::DescribeGroups;
    const VERSIONS: Versions = Versions::new(0, 6);
    type Request = DescribeGroupsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<DescribeGroupsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: DescribeGroupsRequest) -> Outcome {
        let v = ctx.version;
        let s = StrBytes::from_string;
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let (code, d) = describe(ctx, &g.0).await;
            let mut out = DescribedGroup::default()
                .with_group_id(g.clone())
                .with_authorized_operations(if v >= 3 && req.include_authorized_operations {
                    GROUP_OPERATIONS
                } else {
                    i32::MIN
                });
            match d {
                Some(d) if d.state.is_some() => {
                    out = out
                        .with_error_code(code.code())
                        .with_group_state(StrBytes::from_static_str(d.state.unwrap_or("Dead")))
                        .with_protocol_type(s(d.protocol_type))
                        .with_protocol_data(s(d.protocol))
                        .with_members(
                            d.members
                                .into_iter()
                                .map(|m| {
                                    DescribedGroupMember::default()
                                        .with_member_id(s(m.member_id))
                                        .with_group_instance_id(
                                            m.instance_id.filter(|_| v >= 4).map(s),
                                        )
                                        .with_client_id(s(m.client_id))
                                        .with_client_host(s(m.client_host))
                                        .with_member_metadata(m.metadata)
                                        .with_member_assignment(m.assignment)
                                })
                                .collect(),
                        );
                }
                _ if code != errors::NONE => out = out.with_error_code(code.code()),
                _ => {
                    out = out
                        .with_group_state(StrBytes::from_static_str("Dead"))
                        .with_error_code(
                            (if v >= 6 {
                                errors::GROUP_ID_NOT_FOUND
                            } else {
                                errors::NONE
                            })
                            .code(),
                        )
                        .with_error_message(
                            (v >= 6).then(|| s(format!("Group {} not found.", g.0))),
                        );
                }
            }
            groups.push(out);
        }
        ctx.respond(&DescribeGroupsResponse::default().with_groups(groups))
    }
}

/// READ, DELETE and DESCRIBE (Kafka's AclOperation codes 3, 6, 8): no
/// authorizer, so everything a group allows.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

async fn describe(ctx: &Ctx, group: &str) -> (ErrorCode, Option<Described>) {
    if group.is_empty() {
        return (errors::INVALID_GROUP_ID, None);
    }
    let call = GroupCall::Describe {
        groups: vec![group.to_string()],
    };
    match ctx.shard.group_call(group, call).await {
        GroupResult::Describe(mut d) => (errors::NONE, d.pop()),
        GroupResult::Code(c) => (c, None),
        _ => (errors::UNKNOWN_SERVER_ERROR, None),
    }
}
