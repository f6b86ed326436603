//! `spindle topic create|list|describe|delete|add-partitions` (and the
//! dispatch of `alter-config`, in [`super::topic_config`]). Each topic of a
//! multi-topic command succeeds or fails on its own, as the Kafka APIs
//! answer per topic: all results are printed, and the exit code is 1 if
//! any failed.

use serde::Serialize;
use spindle_codec::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use spindle_codec::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use spindle_codec::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use spindle_codec::kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
};

use crate::cli::{AddPartitions, TopicCmd, TopicCreate, TopicDelete, TopicDescribe, TopicList};
use crate::client::{str_bytes, topic_name, PartitionInfo, EARLIEST, LATEST};
use crate::cmd::topic_config::{self, ConfigEntry};
use crate::error::{AdminError, KafkaCode, Result};
use crate::output::{ids, print_described, print_json, report, Outcome, Table};
use crate::Ctx;

/// Kafka's codes that `--if-not-exists` and `--if-exists` forgive.
const TOPIC_ALREADY_EXISTS: i16 = 36;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

pub fn run(ctx: &Ctx, cmd: TopicCmd) -> Result<()> {
    match cmd {
        TopicCmd::Create(a) => create(ctx, a),
        TopicCmd::List(a) => list(ctx, a),
        TopicCmd::Describe(a) => describe(ctx, a),
        TopicCmd::Delete(a) => delete(ctx, a),
        TopicCmd::AlterConfig(a) => topic_config::alter(ctx, a),
        TopicCmd::AddPartitions(a) => add_partitions(ctx, a),
    }
}

fn create(ctx: &Ctx, a: TopicCreate) -> Result<()> {
    let mut client = ctx.connect()?;
    let configs: Vec<CreatableTopicConfig> = a
        .configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(k))
                .with_value(Some(str_bytes(v)))
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_topics(
            a.topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(t))
                        .with_num_partitions(a.partitions)
                        .with_replication_factor(a.replication_factor)
                        .with_configs(configs.clone())
                })
                .collect(),
        )
        .with_timeout_ms(timeout_ms(ctx))
        .with_validate_only(a.dry_run);
    let resp = client.bootstrap().call(&req)?;
    let outcomes: Vec<Outcome> = resp
        .topics
        .into_iter()
        .map(|t| {
            let forgiven = a.if_not_exists && t.error_code == TOPIC_ALREADY_EXISTS;
            let code = if forgiven { 0 } else { t.error_code };
            Outcome::of(
                t.name.0.to_string(),
                code,
                t.error_message.map(|m| m.to_string()),
            )
        })
        .collect();
    report(
        ctx,
        "TOPIC",
        &outcomes,
        if a.dry_run { "OK (dry run)" } else { "OK" },
    )
}

#[derive(Serialize)]
struct Listed {
    name: String,
    partitions: usize,
    replication_factor: usize,
    internal: bool,
}

fn list(ctx: &Ctx, a: TopicList) -> Result<()> {
    let view = ctx.connect()?.metadata(None, false)?;
    let topics: Vec<Listed> = view
        .topics
        .iter()
        .filter(|t| a.internal || !t.internal)
        .map(|t| Listed {
            name: t.name.clone(),
            partitions: t.partitions.len(),
            replication_factor: t.replication_factor(),
            internal: t.internal,
        })
        .collect();
    if ctx.json() {
        return print_json(&topics);
    }
    let mut t = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
    for l in &topics {
        t.row(vec![
            l.name.clone(),
            l.partitions.to_string(),
            l.replication_factor.to_string(),
        ]);
    }
    t.print()
}

#[derive(Serialize)]
struct PartitionRow {
    #[serde(flatten)]
    info: PartitionInfo,
    log_start_offset: i64,
    high_watermark: i64,
}

#[derive(Serialize)]
struct Described {
    name: String,
    internal: bool,
    partitions: Vec<PartitionRow>,
    configs: Vec<ConfigEntry>,
}

fn describe(ctx: &Ctx, a: TopicDescribe) -> Result<()> {
    let mut client = ctx.connect()?;
    let view = client.metadata(Some(&a.topics), false)?;
    let mut out = Vec::new();
    for name in &a.topics {
        let topic = view.topic(name)?;
        let parts: Vec<(String, i32)> = topic
            .partitions
            .iter()
            .map(|p| (name.clone(), p.partition))
            .collect();
        let starts = client.offsets_at(&view, &parts, EARLIEST)?;
        let ends = client.offsets_at(&view, &parts, LATEST)?;
        let at = |m: &std::collections::BTreeMap<(String, i32), i64>, p: i32| {
            m.get(&(name.clone(), p)).copied().unwrap_or(-1)
        };
        let configs = topic_config::describe(client.bootstrap(), name)?
            .into_iter()
            .filter(|c| a.all_configs || c.source == topic_config::SOURCE_TOPIC)
            .collect();
        out.push(Described {
            name: name.clone(),
            internal: topic.internal,
            partitions: topic
                .partitions
                .iter()
                .map(|p| PartitionRow {
                    info: p.clone(),
                    log_start_offset: at(&starts, p.partition),
                    high_watermark: at(&ends, p.partition),
                })
                .collect(),
            configs,
        });
    }
    print_described(ctx, &out, describe_text)
}

fn describe_text(d: &Described) -> String {
    let replicas = d.partitions.iter().map(|p| p.info.replicas.len()).max();
    let mut summary = Table::new(&["TOPIC", "INTERNAL", "PARTITIONS", "REPLICAS"]);
    summary.row(vec![
        d.name.clone(),
        d.internal.to_string(),
        d.partitions.len().to_string(),
        replicas.unwrap_or(0).to_string(),
    ]);
    let mut parts = Table::new(&[
        "PARTITION",
        "LEADER",
        "EPOCH",
        "REPLICAS",
        "ISR",
        "OFFLINE",
        "LOG-START-OFFSET",
        "HIGH-WATERMARK",
    ]);
    for p in &d.partitions {
        let error = match p.info.error_code {
            0 => String::new(),
            c => format!(" ({})", KafkaCode(c, None)),
        };
        parts.row(vec![
            p.info.partition.to_string(),
            format!("{}{error}", p.info.leader),
            p.info.leader_epoch.to_string(),
            ids(&p.info.replicas),
            ids(&p.info.isr),
            ids(&p.info.offline_replicas),
            p.log_start_offset.to_string(),
            p.high_watermark.to_string(),
        ]);
    }
    let mut configs = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
    for c in &d.configs {
        configs.row(vec![
            c.name.clone(),
            c.value.clone().unwrap_or_else(|| "(sensitive)".into()),
            c.source_name.to_string(),
        ]);
    }
    let configs = if d.configs.is_empty() {
        "(no configs set on the topic; --all-configs shows every one)\n".to_string()
    } else {
        configs.render()
    };
    format!("{}\n{}\n{}", summary.render(), configs, parts.render())
}

fn delete(ctx: &Ctx, a: TopicDelete) -> Result<()> {
    let mut client = ctx.connect()?;
    let conn = client.bootstrap();
    let v = conn.version(ApiKey::DeleteTopics)?;
    let mut req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms(ctx));
    // v6 names topics in a list of states (a name or an id).
    if v >= 6 {
        req = req.with_topics(
            a.topics
                .iter()
                .map(|t| DeleteTopicState::default().with_name(Some(topic_name(t))))
                .collect(),
        );
    } else {
        req = req.with_topic_names(a.topics.iter().map(|t| topic_name(t)).collect());
    }
    let resp = conn.call_version(&req, v)?;
    let outcomes: Vec<Outcome> = resp
        .responses
        .into_iter()
        .map(|r| {
            let forgiven = a.if_exists && r.error_code == UNKNOWN_TOPIC_OR_PARTITION;
            let code = if forgiven { 0 } else { r.error_code };
            let name = r.name.map(|n| n.0.to_string()).unwrap_or_default();
            Outcome::of(name, code, r.error_message.map(|m| m.to_string()))
        })
        .collect();
    report(ctx, "TOPIC", &outcomes, "OK")
}

fn add_partitions(ctx: &Ctx, a: AddPartitions) -> Result<()> {
    let mut client = ctx.connect()?;
    let mut topics = Vec::new();
    let mut outcomes = Vec::new();
    if let Some(n) = a.num {
        // The API takes the new total: read the current count first.
        let view = client.metadata(Some(&a.topics), false)?;
        for name in &a.topics {
            match view.topic(name) {
                Ok(t) => topics.push((name.clone(), t.partitions.len() as i32 + n)),
                Err(AdminError::Kafka { code, message, .. }) => {
                    outcomes.push(Outcome::of(name.clone(), code, message))
                }
                Err(e) => return Err(e),
            }
        }
    } else if let Some(total) = a.total {
        topics = a.topics.iter().map(|t| (t.clone(), total)).collect();
    }
    if !topics.is_empty() {
        let req = CreatePartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|(t, count)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(t))
                            .with_count(*count)
                            .with_assignments(None)
                    })
                    .collect(),
            )
            .with_timeout_ms(timeout_ms(ctx));
        let resp = client.bootstrap().call(&req)?;
        outcomes.extend(resp.results.into_iter().map(|r| {
            Outcome::of(
                r.name.0.to_string(),
                r.error_code,
                r.error_message.map(|m| m.to_string()),
            )
        }));
    }
    outcomes.sort_by(|x, y| x.name.cmp(&y.name));
    report(ctx, "TOPIC", &outcomes, "OK")
}

/// The broker-side bound of a request, the CLI's own timeout.
fn timeout_ms(ctx: &Ctx) -> i32 {
    i32::try_from(ctx.timeout.as_millis()).unwrap_or(i32::MAX)
}
