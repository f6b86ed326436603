//! Broker configuration: command-line flags over an optional TOML file over
//! defaults. Every field of the file has a flag of the same name.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use spindle_engine::{FlushMode, LogConfig};

use crate::constants::{
    CONNECTIONS_MAX_DEFAULT, OFFSETS_REWRITE_BYTES_DEFAULT, REQUEST_BYTES_MAX_DEFAULT,
};

/// Spindle: a Kafka-compatible broker, thread-per-core on io_uring.
#[derive(Debug, Parser, Default)]
#[command(name = "spindle", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on for Kafka clients, HOST:PORT (port 0: any free
    /// port; the bound one is logged). Default 127.0.0.1:9092.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Directory holding partition logs and topic metadata. Default ./data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address given to clients in Metadata responses, HOST:PORT. Default:
    /// the listen address with its bound port.
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Shards (pinned executors, one per core). Default: the cores available.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Durability of acknowledged writes: batch (fdatasync before the ack,
    /// group commit), interval:MS (sync every MS), never (OS decides).
    /// Default batch.
    #[arg(long, value_name = "MODE")]
    pub flush: Option<String>,
    /// This broker's node id in Metadata responses. Default 0.
    #[arg(long, value_name = "N")]
    pub node_id: Option<i32>,
    /// TOML file with any of these settings (keys as the flag names with
    /// `_` for `-`); flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Default `retention.ms` of new topics (-1: keep forever). Default 7 days.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub retention_ms: Option<i64>,
    /// Default `retention.bytes` per partition (-1: unlimited). Default -1.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub retention_bytes: Option<i64>,
    /// Default `segment.bytes` of new topics. Default 1 GiB.
    #[arg(long, value_name = "BYTES")]
    pub segment_bytes: Option<u64>,
    /// How often each shard enforces retention, in ms. Default 300000.
    #[arg(long, value_name = "MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// Create a topic when a client asks for its metadata. Default true.
    #[arg(long, value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics (and of CreateTopics asking for -1).
    /// Default 1.
    #[arg(long, value_name = "N")]
    pub default_partitions: Option<u32>,
    /// Largest request frame accepted; larger ones close the connection.
    /// Default 104857600 (100 MiB).
    #[arg(long, value_name = "BYTES")]
    pub max_request_bytes: Option<u32>,
    /// Connections accepted at once over all shards; more are closed.
    /// Default 10000.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
    /// Batch cache (recent batches served from memory) per shard, in MiB.
    /// Default 256.
    #[arg(long, value_name = "MIB")]
    pub cache_mb: Option<u64>,
    /// Partitions of the internal `__consumer_offsets` topic, fixed when
    /// it is first created (groups are spread over them, and so over the
    /// shards owning them). Default: the shard count at that first start.
    #[arg(long, value_name = "N")]
    pub offsets_topic_partitions: Option<u32>,
    /// Committed offsets of a group that has been empty this long are
    /// deleted (Kafka's offsets.retention.minutes). Default 10080 (7 days).
    #[arg(long, value_name = "MIN")]
    pub offsets_retention_minutes: Option<u64>,
    /// The same retention in milliseconds; wins over the minutes when both
    /// are given (for retention shorter than a minute, as in tests).
    #[arg(long, value_name = "MS")]
    pub offsets_retention_ms: Option<u64>,
    /// How often expired offsets are looked for, in ms. Default 600000.
    #[arg(long, value_name = "MS")]
    pub offsets_retention_check_interval_ms: Option<u64>,
    /// Smallest session timeout a consumer may ask for. Default 6000.
    #[arg(long, value_name = "MS")]
    pub group_min_session_timeout_ms: Option<u64>,
    /// Largest session timeout a consumer may ask for. Default 1800000.
    #[arg(long, value_name = "MS")]
    pub group_max_session_timeout_ms: Option<u64>,
    /// How long the first rebalance of an empty group waits for more
    /// members after the last one joined. Default 1000 (Kafka: 3000).
    #[arg(long, value_name = "MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Members one group may have. Default 10000.
    #[arg(long, value_name = "N")]
    pub group_max_size: Option<u32>,
    /// The offsets log has no compaction: once a partition of it grew by
    /// this many bytes (and twice its live state), its live state is
    /// written again and the segments below deleted. Also sets the offsets
    /// topic's segment size (a quarter of it) when the topic is first
    /// created. Default 67108864.
    #[arg(long, value_name = "BYTES")]
    pub offsets_rewrite_bytes: Option<u64>,
}

/// The same settings read from `--config FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    advertise: Option<String>,
    shards: Option<usize>,
    flush: Option<String>,
    node_id: Option<i32>,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    segment_bytes: Option<u64>,
    retention_check_interval_ms: Option<u64>,
    auto_create_topics: Option<bool>,
    default_partitions: Option<u32>,
    max_request_bytes: Option<u32>,
    max_connections: Option<u32>,
    cache_mb: Option<u64>,
    offsets_topic_partitions: Option<u32>,
    offsets_retention_minutes: Option<u64>,
    offsets_retention_ms: Option<u64>,
    offsets_retention_check_interval_ms: Option<u64>,
    group_min_session_timeout_ms: Option<u64>,
    group_max_session_timeout_ms: Option<u64>,
    group_initial_rebalance_delay_ms: Option<u64>,
    group_max_size: Option<u32>,
    offsets_rewrite_bytes: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub advertise: Option<String>,
    pub shards: usize,
    pub node_id: i32,
    /// Defaults for new topics (topic configs override them).
    pub log: LogConfig,
    pub retention_check_interval_ms: u64,
    pub auto_create_topics: bool,
    pub default_partitions: u32,
    pub request_bytes_max: u32,
    pub connections_max: u32,
    pub cache_bytes_per_shard: u64,
    /// `None`: as many as shards, when the topic is first created.
    pub offsets_topic_partitions: Option<u32>,
    pub groups: GroupConfig,
}

/// Group coordinator settings.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    pub offsets_retention_ms: u64,
    pub offsets_retention_check_interval_ms: u64,
    pub session_timeout_ms_min: u64,
    pub session_timeout_ms_max: u64,
    pub initial_rebalance_delay_ms: u64,
    pub members_max: u32,
    pub offsets_rewrite_bytes: u64,
}

fn opt_ms(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parse config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let flush: FlushMode = match args.flush.or(file.flush) {
            Some(s) => s.parse().map_err(|e| anyhow::anyhow!("--flush: {e}"))?,
            None => FlushMode::Batch,
        };
        let defaults = LogConfig::default();
        let log = LogConfig {
            segment_bytes_max: args
                .segment_bytes
                .or(file.segment_bytes)
                .unwrap_or(defaults.segment_bytes_max),
            retention_ms: match args.retention_ms.or(file.retention_ms) {
                Some(v) => opt_ms(v),
                None => defaults.retention_ms,
            },
            retention_bytes: match args.retention_bytes.or(file.retention_bytes) {
                Some(v) => opt_ms(v),
                None => defaults.retention_bytes,
            },
            flush,
            ..defaults
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = args.shards.or(file.shards).unwrap_or(cores);
        if shards == 0 || shards > 256 {
            bail!("--shards must be between 1 and 256, not {shards}");
        }
        let default_partitions = args
            .default_partitions
            .or(file.default_partitions)
            .unwrap_or(1);
        if default_partitions == 0 {
            bail!("--default-partitions must be at least 1");
        }
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9092".into());
        listen
            .parse::<SocketAddr>()
            .with_context(|| format!("--listen {listen}: expected HOST:PORT with an IP host"))?;
        let offsets_topic_partitions = args
            .offsets_topic_partitions
            .or(file.offsets_topic_partitions);
        if offsets_topic_partitions == Some(0) {
            bail!("--offsets-topic-partitions must be at least 1");
        }
        let groups = GroupConfig {
            offsets_retention_ms: match args.offsets_retention_ms.or(file.offsets_retention_ms) {
                Some(ms) => ms,
                None => args
                    .offsets_retention_minutes
                    .or(file.offsets_retention_minutes)
                    .unwrap_or(7 * 24 * 60)
                    .saturating_mul(60_000),
            },
            offsets_retention_check_interval_ms: args
                .offsets_retention_check_interval_ms
                .or(file.offsets_retention_check_interval_ms)
                .unwrap_or(600_000)
                .max(1),
            session_timeout_ms_min: args
                .group_min_session_timeout_ms
                .or(file.group_min_session_timeout_ms)
                .unwrap_or(6_000),
            session_timeout_ms_max: args
                .group_max_session_timeout_ms
                .or(file.group_max_session_timeout_ms)
                .unwrap_or(1_800_000),
            initial_rebalance_delay_ms: args
                .group_initial_rebalance_delay_ms
                .or(file.group_initial_rebalance_delay_ms)
                .unwrap_or(1_000),
            members_max: args
                .group_max_size
                .or(file.group_max_size)
                .unwrap_or(10_000),
            offsets_rewrite_bytes: args
                .offsets_rewrite_bytes
                .or(file.offsets_rewrite_bytes)
                .unwrap_or(OFFSETS_REWRITE_BYTES_DEFAULT),
        };
        if groups.offsets_rewrite_bytes < 64 << 10 {
            bail!("--offsets-rewrite-bytes must be at least 65536");
        }
        if groups.session_timeout_ms_min > groups.session_timeout_ms_max {
            bail!("--group-min-session-timeout-ms is above --group-max-session-timeout-ms");
        }
        let advertise = args.advertise.or(file.advertise);
        if let Some(a) = &advertise {
            split_host_port(a).with_context(|| format!("--advertise {a}"))?;
        }
        Ok(Config {
            listen,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            advertise,
            shards,
            node_id: args.node_id.or(file.node_id).unwrap_or(0),
            log,
            retention_check_interval_ms: args
                .retention_check_interval_ms
                .or(file.retention_check_interval_ms)
                .unwrap_or(300_000)
                .max(1),
            auto_create_topics: args
                .auto_create_topics
                .or(file.auto_create_topics)
                .unwrap_or(true),
            default_partitions,
            request_bytes_max: args
                .max_request_bytes
                .or(file.max_request_bytes)
                .unwrap_or(REQUEST_BYTES_MAX_DEFAULT),
            connections_max: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(CONNECTIONS_MAX_DEFAULT),
            cache_bytes_per_shard: args.cache_mb.or(file.cache_mb).unwrap_or(256) << 20,
            offsets_topic_partitions,
            groups,
        })
    }
}

/// Splits `HOST:PORT` (IPv6 hosts in brackets) into its parts.
pub fn split_host_port(s: &str) -> Result<(String, u16)> {
    let (host, port) = s.rsplit_once(':').context("expected HOST:PORT")?;
    let port: u16 = port.parse().context("bad port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("empty host");
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spindle.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:19092\"\nshards = 3\nflush = \"never\"\ndefault_partitions = 4\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "spindle",
            "--config",
            path.to_str().unwrap(),
            "--shards",
            "2",
            "--retention-ms",
            "-1",
        ]);
        let c = Config::from_args(args).unwrap();
        assert_eq!(c.listen, "127.0.0.1:19092");
        assert_eq!(c.shards, 2);
        assert_eq!(c.log.flush, FlushMode::Never);
        assert_eq!(c.log.retention_ms, None);
        assert_eq!(c.default_partitions, 4);
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            vec!["spindle", "--flush", "sometimes"],
            vec!["spindle", "--shards", "0"],
            vec!["spindle", "--listen", "localhost"],
            vec!["spindle", "--advertise", "host"],
        ] {
            assert!(Config::from_args(Args::parse_from(bad)).is_err());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        let args = Args::parse_from(["spindle", "--config", path.to_str().unwrap()]);
        assert!(Config::from_args(args).is_err());
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a.b:9092").unwrap(), ("a.b".into(), 9092));
        assert_eq!(split_host_port("[::1]:1").unwrap(), ("::1".into(), 1));
        assert!(split_host_port(":1").is_err());
    }
}
