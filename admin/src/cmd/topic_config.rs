//! Topic configs: read with DescribeConfigs, changed with
//! IncrementalAlterConfigs (KIP-339: set, delete, append, subtract one key
//! at a time). A broker with only the older AlterConfigs gets the whole
//! set of topic configs, read first and changed here, as Kafka's own
//! admin client did before KIP-339; append and subtract need the new API.
//! A broker with neither is told apart from a failed change: the command
//! says "the broker does not support IncrementalAlterConfigs".

use serde::Serialize;
use spindle_codec::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use spindle_codec::kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest, ApiKey,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

use crate::cli::AlterConfig;
use crate::client::str_bytes;
use crate::conn::Conn;
use crate::error::{AdminError, Result};
use crate::output::{report, Outcome};
use crate::Ctx;

/// Kafka's ConfigResource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs source of a config set on the topic itself.
pub const SOURCE_TOPIC: i8 = 1;

/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

#[derive(Debug, Clone, Serialize)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for a sensitive config, which brokers never send.
    pub value: Option<String>,
    #[serde(skip)]
    pub source: i8,
    #[serde(rename = "source")]
    pub source_name: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
}

/// Kafka's names of DescribeConfigs sources.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// Every config of `topic`, sorted by name.
pub fn describe(conn: &mut Conn, topic: &str) -> Result<Vec<ConfigEntry>> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(None)]);
    let resp = conn.call(&req)?;
    let mut out = Vec::new();
    for r in resp.results {
        AdminError::check(r.error_code, r.error_message.as_deref(), || {
            format!("configs of topic {topic}")
        })?;
        for c in r.configs {
            out.push(ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: c.config_source,
                source_name: source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `topic alter-config`.
pub fn alter(ctx: &Ctx, a: AlterConfig) -> Result<()> {
    let mut client = ctx.connect()?;
    let conn = client.bootstrap();
    let (code, message) = if conn.supports(ApiKey::IncrementalAlterConfigs) {
        incremental(conn, &a)?
    } else if conn.supports(ApiKey::AlterConfigs) {
        whole_set(conn, &a)?
    } else {
        return Err(AdminError::Unsupported(
            "IncrementalAlterConfigs (nor the older AlterConfigs): topic configs cannot be changed on it".into(),
        ));
    };
    let ok = if a.dry_run { "OK (dry run)" } else { "OK" };
    report(
        ctx,
        "TOPIC",
        &[Outcome::of(a.topic.clone(), code, message)],
        ok,
    )
}

fn incremental(conn: &mut Conn, a: &AlterConfig) -> Result<(i16, Option<String>)> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let op = |name: &str, op: i8, value: Option<&str>| {
        AlterableConfig::default()
            .with_name(str_bytes(name))
            .with_config_operation(op)
            .with_value(value.map(str_bytes))
    };
    let mut configs = Vec::new();
    configs.extend(a.set.iter().map(|(k, v)| op(k, OP_SET, Some(v))));
    configs.extend(a.delete.iter().map(|k| op(k, OP_DELETE, None)));
    configs.extend(a.append.iter().map(|(k, v)| op(k, OP_APPEND, Some(v))));
    configs.extend(a.subtract.iter().map(|(k, v)| op(k, OP_SUBTRACT, Some(v))));
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(&a.topic))
            .with_configs(configs)])
        .with_validate_only(a.dry_run);
    let resp = conn.call(&req)?;
    let r = resp
        .responses
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::Protocol("IncrementalAlterConfigs: empty answer".into()))?;
    Ok((r.error_code, r.error_message.map(|m| m.to_string())))
}

/// AlterConfigs replaces every topic config: send the current ones with
/// the change applied.
fn whole_set(conn: &mut Conn, a: &AlterConfig) -> Result<(i16, Option<String>)> {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    if !a.append.is_empty() || !a.subtract.is_empty() {
        return Err(AdminError::Unsupported(
            "IncrementalAlterConfigs, which --append and --subtract need".into(),
        ));
    }
    let mut set: Vec<(String, Option<String>)> = describe(conn, &a.topic)?
        .into_iter()
        .filter(|c| c.source == SOURCE_TOPIC)
        .map(|c| (c.name, c.value))
        .collect();
    set.retain(|(k, _)| !a.delete.contains(k) && !a.set.iter().any(|(s, _)| s == k));
    set.extend(a.set.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    let req = AlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(&a.topic))
            .with_configs(
                set.iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(str_bytes(k))
                            .with_value(v.as_deref().map(str_bytes))
                    })
                    .collect(),
            )])
        .with_validate_only(a.dry_run);
    let resp = conn.call(&req)?;
    let r = resp
        .responses
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::Protocol("AlterConfigs: empty answer".into()))?;
    Ok((r.error_code, r.error_message.map(|m| m.to_string())))
}
