//! InitProducerId (key 22), v0-5, for idempotent producers: every call
//! gets a producer id never handed out before (allocated durably by the
//! catalog), epoch 0. A client re-initialising after a sequence error
//! (KIP-360, producer id and epoch given) also gets a fresh id, which is
//! always valid. Transactional ids are refused: no transactions here.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::catalog;
use crate::errors;

/// Serves InitProducerId; see the module doc.
pub struct InitProducerId;

impl Handler for InitProducerId {
    const KEY: ApiKey = ApiKey::InitProducerId;
    const VERSIONS: Versions = Versions::new(0, 5);
    type Request = InitProducerIdRequest;

    fn decode(body: BytesMut, version: i16) -> Result<InitProducerIdRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> Outcome {
        let resp = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if req.transactional_id.is_some() {
            return ctx.respond(
                &resp.with_error_code(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()),
            );
        }
        let resp = match ctx.shard.catalog.allocate_producer_id().await {
            Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(e) => resp.with_error_code(catalog::error_code(&e).code()),
        };
        ctx.respond(&resp)
    }
}
