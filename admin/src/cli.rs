//! The command line of the admin subcommands, as Kafka's own tools and
//! Redpanda's `rpk` name things, so an operator's habits carry over. Bad
//! values (an offset spec, a `KEY=VALUE`, a datetime) are refused here,
//! before anything is sent, with exit code 2.

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::output::Format;
use crate::time;

pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

const EXIT_CODES: &str = "\
Exit codes: 0 ok; 1 the operation failed (a broker error, an unreachable
broker, an API the broker does not serve, an unknown topic or group);
2 bad usage (nothing was sent); 3 `cluster health` found the cluster
unhealthy. Without a subcommand, `spindle` starts the broker.";

#[derive(Debug, Parser)]
#[command(name = "spindle", about = "Spindle admin: topics, groups, the cluster, produce and consume over the Kafka protocol (any Kafka-compatible broker)", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Broker to bootstrap from [env: SPINDLE_BOOTSTRAP; default: 127.0.0.1:9092]
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    /// Output: aligned tables for people or JSON for scripts
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: Format,
    /// Bound on connecting and on each request
    #[arg(long, global = true, default_value_t = 30_000, value_name = "MS")]
    pub timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, delete topics; change configs and partitions
    #[command(subcommand)]
    Topic(TopicCmd),
    /// List, describe, delete consumer groups; reset their offsets
    #[command(subcommand)]
    Group(GroupCmd),
    /// Brokers, controller and cluster id; partition health
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Produce lines of standard input as records
    Produce(ProduceArgs),
    /// Print records of a topic
    Consume(ConsumeArgs),
}

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create topics
    Create(TopicCreate),
    /// List topics
    List(TopicList),
    /// Partitions (leader, replicas, ISR, offsets) and configs of topics
    Describe(TopicDescribe),
    /// Delete topics
    Delete(TopicDelete),
    /// Set or delete topic configs (IncrementalAlterConfigs)
    AlterConfig(AlterConfig),
    /// Add partitions to topics
    AddPartitions(AddPartitions),
}

#[derive(Debug, Args)]
pub struct TopicCreate {
    #[arg(required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Partitions (-1: the broker's default)
    #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
    pub partitions: i32,
    /// Replication factor (-1: the broker's default)
    #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i16,
    /// A topic config, repeatable
    #[arg(short, long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
    pub configs: Vec<(String, String)>,
    /// Succeed when the topic already exists
    #[arg(long)]
    pub if_not_exists: bool,
    /// Let the broker validate the request without creating anything
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TopicList {
    /// Include internal topics (__consumer_offsets)
    #[arg(short, long)]
    pub internal: bool,
}

#[derive(Debug, Args)]
pub struct TopicDescribe {
    #[arg(required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Every config, not only those set on the topic
    #[arg(short, long)]
    pub all_configs: bool,
}

#[derive(Debug, Args)]
pub struct TopicDelete {
    #[arg(required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Succeed when the topic does not exist
    #[arg(long)]
    pub if_exists: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("ops").required(true).multiple(true)
    .args(["set", "delete", "append", "subtract"])))]
pub struct AlterConfig {
    #[arg(value_name = "TOPIC")]
    pub topic: String,
    /// Set a config, repeatable
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub set: Vec<(String, String)>,
    /// Remove a config (back to the broker's default), repeatable
    #[arg(long, value_name = "KEY")]
    pub delete: Vec<String>,
    /// Add values to a list config, repeatable
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub append: Vec<(String, String)>,
    /// Remove values from a list config, repeatable
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub subtract: Vec<(String, String)>,
    /// Let the broker validate the change without applying it
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("count").required(true).args(["num", "total"])))]
pub struct AddPartitions {
    #[arg(required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Partitions to add
    #[arg(short, long, value_parser = clap::value_parser!(i32).range(1..))]
    pub num: Option<i32>,
    /// The new partition count
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub total: Option<i32>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List consumer groups on every broker
    List,
    /// Members, committed offsets and lag of groups
    Describe(GroupNames),
    /// Delete empty groups and their committed offsets
    Delete(GroupNames),
    /// Move a group's committed offsets (a dry run unless --execute)
    ResetOffsets(ResetOffsets),
}

#[derive(Debug, Args)]
pub struct GroupNames {
    #[arg(required = true, value_name = "GROUP")]
    pub groups: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("to").required(true)
    .args(["to_earliest", "to_latest", "to_datetime", "shift_by", "to_offset"])))]
#[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
pub struct ResetOffsets {
    #[arg(value_name = "GROUP")]
    pub group: String,
    /// A topic, or some of its partitions as TOPIC:0,1; repeatable
    #[arg(long, value_name = "TOPIC[:P,P]", value_parser = topic_partitions)]
    pub topic: Vec<(String, Option<Vec<i32>>)>,
    /// Every topic the group has committed offsets for
    #[arg(long)]
    pub all_topics: bool,
    /// The earliest offset still in the log
    #[arg(long)]
    pub to_earliest: bool,
    /// The end of the log
    #[arg(long)]
    pub to_latest: bool,
    /// The first offset at or after a time: YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] (UTC without a zone)
    #[arg(long, value_name = "DATETIME", value_parser = time::parse_datetime)]
    pub to_datetime: Option<i64>,
    /// The committed offset moved by N (negative: back), kept within the log
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// This offset, kept within the log
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Commit the new offsets; without it only the plan is printed
    #[arg(long)]
    pub execute: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Cluster id, controller and brokers
    Info,
    /// Under-replicated, offline and leaderless partitions (exit 3 if any)
    Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[arg(value_name = "TOPIC")]
    pub topic: String,
    /// Partition for every record (default: by key hash as Kafka's
    /// partitioner, round-robin per batch without keys)
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Split each line at the first SEP into key and value
    #[arg(short, long, value_name = "SEP")]
    pub key_sep: Option<String>,
    /// A header on every record, repeatable
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// all (-1), 1 or 0 (no answer: no offsets are reported)
    #[arg(long, default_value = "all", value_parser = acks)]
    pub acks: i16,
    #[arg(short = 'z', long, value_enum, default_value = "none")]
    pub compression: Compression,
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    At(i64),
    /// N records before the end.
    FromEnd(i64),
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[arg(value_name = "TOPIC")]
    pub topic: String,
    /// Read only these partitions (repeatable; default: all)
    #[arg(short, long = "partition", value_name = "P")]
    pub partitions: Vec<i32>,
    /// Start: earliest, latest, an offset N, or -N (N before the end); with
    /// --group, where partitions without a committed offset start
    #[arg(short, long, default_value = "earliest", value_parser = offset_spec, allow_negative_numbers = true)]
    pub offset: OffsetSpec,
    /// Start at the first record at or after a time: ms since the epoch or
    /// YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] (UTC without a zone)
    #[arg(long, value_name = "TIME", value_parser = time::parse_time, conflicts_with = "offset")]
    pub from_time: Option<i64>,
    /// Stop after N records
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop at the end of the partitions (as it was when reading started)
    #[arg(short, long)]
    pub exit_at_end: bool,
    /// Read as a member of this consumer group, committing offsets
    #[arg(short, long)]
    pub group: Option<String>,
    /// Text output: print the key before the value, separated by --key-sep
    #[arg(long)]
    pub print_key: bool,
    /// Text output: print headers (k=v,k2=v2) before the key
    #[arg(long)]
    pub print_headers: bool,
    /// Text output: print the partition first
    #[arg(long)]
    pub print_partition: bool,
    /// Text output: print the offset before the timestamp
    #[arg(long)]
    pub print_offset: bool,
    /// Text output: print the timestamp (ms) before the headers
    #[arg(long)]
    pub print_timestamp: bool,
    /// Text output: what separates the printed fields
    #[arg(short, long, default_value = "\t", value_name = "SEP")]
    pub key_sep: String,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

fn acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("acks must be all, -1, 1 or 0, got '{s}'")),
    }
}

pub fn offset_spec(s: &str) -> Result<OffsetSpec, String> {
    let bad = || {
        format!("invalid offset '{s}': expected earliest, latest, an offset N, or -N (N before the end)")
    };
    match s {
        "earliest" | "beginning" | "start" | "oldest" => Ok(OffsetSpec::Earliest),
        "latest" | "end" | "newest" => Ok(OffsetSpec::Latest),
        _ => match s.parse::<i64>() {
            Ok(n) if n >= 0 && !s.starts_with('+') => Ok(OffsetSpec::At(n)),
            Ok(n) if n < 0 => Ok(OffsetSpec::FromEnd(-n)),
            _ => Err(bad()),
        },
    }
}

fn topic_partitions(s: &str) -> Result<(String, Option<Vec<i32>>), String> {
    let Some((t, ps)) = s.split_once(':') else {
        return Ok((s.to_string(), None));
    };
    let parts: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
    match parts {
        Ok(p) if !t.is_empty() && p.iter().all(|&x| x >= 0) => Ok((t.to_string(), Some(p))),
        _ => Err(format!(
            "expected TOPIC or TOPIC:P,P (partitions as numbers), got '{s}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn offset_specs() {
        assert_eq!(offset_spec("earliest"), Ok(OffsetSpec::Earliest));
        assert_eq!(offset_spec("end"), Ok(OffsetSpec::Latest));
        assert_eq!(offset_spec("42"), Ok(OffsetSpec::At(42)));
        assert_eq!(offset_spec("-5"), Ok(OffsetSpec::FromEnd(5)));
        for bad in ["", "x", "+3", "1.5", "earliest1"] {
            assert!(offset_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_values_and_topic_partitions() {
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(key_value("=x").is_err());
        assert!(key_value("nokey").is_err());
        assert_eq!(topic_partitions("t"), Ok(("t".into(), None)));
        assert_eq!(
            topic_partitions("t:0,2"),
            Ok(("t".into(), Some(vec![0, 2])))
        );
        assert!(topic_partitions("t:x").is_err());
        assert!(topic_partitions(":1").is_err());
    }
}
