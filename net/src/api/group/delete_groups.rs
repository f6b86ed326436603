//! DeleteGroups (key 42), v0-2: deletes empty groups and their committed
//! offsets (tombstones in the offsets log); a group with members gets
//! NON_EMPTY_GROUP.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::group_coordinator::{GroupCall, GroupResult};

/// Serves DeleteGroups; see the module doc.
pub struct DeleteGroups;

impl Handler for DeleteGroups {
    const KEY: ApiKey = ApiKey::DeleteGroups;
    const VERSIONS: Versions = Versions::new(0, 2);
    type Request = DeleteGroupsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<DeleteGroupsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: DeleteGroupsRequest) -> Outcome {
        let mut results = Vec::with_capacity(req.groups_names.len());
        for g in &req.groups_names {
            let code = if g.0.is_empty() {
                errors::INVALID_GROUP_ID
            } else {
                let call = GroupCall::Delete {
                    groups: vec![g.0.to_string()],
                };
                match ctx.shard.group_call(&g.0, call).await {
                    GroupResult::Delete(c) => {
                        c.first().copied().unwrap_or(errors::UNKNOWN_SERVER_ERROR)
                    }
                    GroupResult::Code(c) => c,
                    _ => errors::UNKNOWN_SERVER_ERROR,
                }
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(g.clone())
                    .with_error_code(code.code()),
            );
        }
        ctx.respond(&DeleteGroupsResponse::default().with_results(results))
    }
}
