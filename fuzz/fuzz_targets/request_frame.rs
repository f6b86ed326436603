//! The broker's whole request decode path on arbitrary bytes: framing
//! with a size bound, the request header, then the body decoder of every
//! API the broker serves (the hand-written Produce decoder and the
//! generated ones). Nothing may panic or abort; a Produce that decodes
//! must re-encode to an equal request.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use spindle_codec::frame::split_frame;
use spindle_codec::header::{decode_body, decode_request_header};
use spindle_codec::kafka_protocol::messages::*;
use spindle_codec::produce::{decode_produce, encode_produce};

const FRAME_BYTES_MAX: u32 = 1 << 20;

fn body(key: ApiKey, version: i16, body: BytesMut) {
    match key {
        ApiKey::Produce => {
            if let Ok(req) = decode_produce(body, version) {
                let mut again = BytesMut::new();
                encode_produce(&req, version, &mut again);
                let back = decode_produce(again, version).expect("re-encoded produce decodes");
                assert_eq!(back, req);
            }
        }
        ApiKey::ApiVersions => drop(decode_body::<ApiVersionsRequest>(body, version)),
        ApiKey::Metadata => drop(decode_body::<MetadataRequest>(body, version)),
        ApiKey::Fetch => drop(decode_body::<FetchRequest>(body, version)),
        ApiKey::ListOffsets => drop(decode_body::<ListOffsetsRequest>(body, version)),
        ApiKey::CreateTopics => drop(decode_body::<CreateTopicsRequest>(body, version)),
        ApiKey::DeleteTopics => drop(decode_body::<DeleteTopicsRequest>(body, version)),
        ApiKey::CreatePartitions => drop(decode_body::<CreatePartitionsRequest>(body, version)),
        ApiKey::DescribeConfigs => drop(decode_body::<DescribeConfigsRequest>(body, version)),
        ApiKey::DescribeCluster => drop(decode_body::<DescribeClusterRequest>(body, version)),
        ApiKey::InitProducerId => drop(decode_body::<InitProducerIdRequest>(body, version)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(mut frame)) = split_frame(&mut buf, FRAME_BYTES_MAX) {
        if let Ok((key, header)) = decode_request_header(&mut frame) {
            // Only versions the codec knows, as the broker checks first.
            let v = header.request_api_version;
            let r = key.valid_versions();
            if v >= r.min && v <= r.max {
                body(key, v, frame);
            }
        }
    }
});
