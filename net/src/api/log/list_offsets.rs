//! ListOffsets (key 2), v1-9: earliest (-2, and -4 earliest-local / -5
//! earliest-tiered, the same here), latest (-1: the high watermark, under
//! either isolation level as there are no transactions), and by timestamp
//! (the first batch whose max timestamp is at or after it). -3 (the
//! record with the largest timestamp) is refused: the engine keeps no such
//! index.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::errors;
use crate::shard::{OpReply, PartitionOp};

/// Serves ListOffsets; see the module doc.
pub struct ListOffsets;

impl Handler for ListOffsets {
    const KEY: ApiKey = ApiKey::ListOffsets;
    const VERSIONS: Versions = Versions::new(1, 9);
    type Request = ListOffsetsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<ListOffsetsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> Outcome {
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in t.partitions {
                let ts = p.timestamp;
                let resp = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let resp = if ctx.version >= 4 {
                    resp.with_leader_epoch(0)
                } else {
                    resp
                };
                let timestamp = match ts {
                    LATEST | EARLIEST | EARLIEST_LOCAL | EARLIEST_TIERED => None,
                    t if t >= 0 => Some(t),
                    _ => {
                        partitions.push(resp.with_error_code(errors::INVALID_REQUEST.code()));
                        continue;
                    }
                };
                let resp = match ctx
                    .shard
                    .run_op(&name, p.partition_index, PartitionOp::Offsets { timestamp })
                    .await
                {
                    OpReply::Offsets(Ok(o)) => match ts {
                        LATEST => resp.with_offset(o.high_watermark),
                        EARLIEST | EARLIEST_LOCAL | EARLIEST_TIERED => {
                            resp.with_offset(o.log_start_offset)
                        }
                        _ => match o.for_timestamp {
                            // Only what consumers may read counts.
                            Some((offset, found_ts)) if offset < o.high_watermark => {
                                resp.with_offset(offset).with_timestamp(found_ts)
                            }
                            _ => resp,
                        },
                    },
                    OpReply::Offsets(Err(code)) | OpReply::Error(code) => {
                        resp.with_error_code(code.code())
                    }
                    _ => resp.with_error_code(errors::UNKNOWN_SERVER_ERROR.code()),
                };
                partitions.push(resp);
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions),
            );
        }
        ctx.respond(&ListOffsetsResponse::default().with_topics(topics))
    }
}

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_TIERED: i64 = -5;
