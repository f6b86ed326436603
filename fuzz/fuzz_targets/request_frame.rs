//! The broker's whole request decode path on arbitrary bytes: framing
//! with a size bound, the request header, then the body decoder of the
//! API the header names, taken from the broker's own registry of served
//! APIs (so every served API is covered, and a new one is the day it is
//! listed). Nothing may panic or abort; a Produce that decodes must
//! re-encode to an equal request.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use spindle_codec::frame::split_frame;
use spindle_codec::header::decode_request_header;
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::produce::{decode_produce, encode_produce};
use spindle_net::api::registry;

const FRAME_BYTES_MAX: u32 = 1 << 20;

fn body(key: ApiKey, version: i16, body: BytesMut) {
    let Some(api) = registry::find(key) else {
        return;
    };
    if key == ApiKey::Produce {
        // The hand-written decoder has a client-side twin: check both.
        if let Ok(req) = decode_produce(body.clone(), version) {
            let mut again = BytesMut::new();
            encode_produce(&req, version, &mut again);
            let back = decode_produce(again, version).expect("re-encoded produce decodes");
            assert_eq!(back, req);
        }
    }
    let _ = (api.decode)(body, version);
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(mut frame)) = split_frame(&mut buf, FRAME_BYTES_MAX) {
        if let Ok((key, header)) = decode_request_header(&mut frame) {
            // Every version the codec knows, not only those served: the
            // broker refuses the rest before decoding, but the decoders
            // must survive them too.
            let v = header.request_api_version;
            let r = key.valid_versions();
            if v >= r.min && v <= r.max {
                body(key, v, frame);
            }
        }
    }
});
