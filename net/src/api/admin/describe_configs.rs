//! DescribeConfigs (key 32), v1-4: topic configs (the topic's own over
//! the broker's defaults) and a few broker configs.

use bytes::BytesMut;
use spindle_codec::header::decode_body;
use spindle_codec::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use spindle_codec::kafka_protocol::messages::ApiKey;
use spindle_codec::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_codec::DecodeError;

use crate::api::{Ctx, Handler, Outcome, Versions};
use crate::catalog::topic_config;
use crate::errors;

/// Serves DescribeConfigs; see the module doc.
pub struct DescribeConfigs;

impl Handler for DescribeConfigs {
    const KEY: ApiKey = ApiKey::DescribeConfigs;
    const VERSIONS: Versions = Versions::new(1, 4);
    type Request = DescribeConfigsRequest;

    fn decode(body: BytesMut, version: i16) -> Result<DescribeConfigsRequest, DecodeError> {
        decode_body(body, version)
    }

    async fn handle(ctx: &Ctx, req: DescribeConfigsRequest) -> Outcome {
        let shard = &ctx.shard;
        let mut results = Vec::with_capacity(req.resources.len());
        for r in req.resources {
            let name = r.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries: Vec<(String, String, i8)> = match r.resource_type {
                RESOURCE_TOPIC => match shard.snapshot().topic(&name) {
                    Some(meta) => topic_config::describe(&shard.config, &meta.configs)
                        .into_iter()
                        .map(|(k, v, d)| (k, v, if d { SOURCE_DEFAULT } else { SOURCE_TOPIC }))
                        .collect(),
                    None => {
                        results.push(
                            result
                                .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION.code())
                                .with_error_message(Some(s(&format!("no topic {name}")))),
                        );
                        continue;
                    }
                },
                RESOURCE_BROKER => {
                    let c = &shard.config;
                    vec![
                        (
                            "broker.id".into(),
                            c.node_id.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "num.partitions".into(),
                            c.default_partitions.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "auto.create.topics.enable".into(),
                            c.auto_create_topics.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "socket.request.max.bytes".into(),
                            c.request_bytes_max.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "log.dirs".into(),
                            c.data_dir.display().to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "spindle.flush".into(),
                            c.log.flush.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                        (
                            "spindle.shards".into(),
                            c.shards.to_string(),
                            SOURCE_STATIC_BROKER,
                        ),
                    ]
                }
                _ => {
                    results.push(
                        result
                            .with_error_code(errors::INVALID_REQUEST.code())
                            .with_error_message(Some(s("unsupported resource type"))),
                    );
                    continue;
                }
            };
            let keys = r.configuration_keys.as_ref();
            let configs = entries
                .into_iter()
                .filter(|(k, _, _)| keys.is_none_or(|ks| ks.iter().any(|x| x.as_str() == k)))
                .map(|(k, v, source)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(s(&k))
                        .with_value(Some(s(&v)))
                        .with_read_only(r.resource_type == RESOURCE_BROKER)
                        .with_config_source(source)
                        .with_config_type(if ctx.version >= 3 { TYPE_STRING } else { 0 })
                })
                .collect();
            results.push(result.with_configs(configs));
        }
        ctx.respond(&DescribeConfigsResponse::default().with_results(results))
    }
}

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_STRING: i8 = 2;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
