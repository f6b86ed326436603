//! Broker configuration: command-line flags over an optional TOML file over
//! defaults. Every field of the file has a flag of the same name.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use spindle_engine::{FlushMode, LogConfig};

use crate::constants::{
    CACHE_MB_PER_SHARD_DEFAULT, CONNECTIONS_MAX_DEFAULT, CONNECTIONS_PER_IP_MAX_DEFAULT,
    CONNECTION_IDLE_MS_DEFAULT, INFLIGHT_REQUESTS_PER_CONNECTION_DEFAULT,
    INFLIGHT_REQUESTS_PER_CONNECTION_MAX, INFLIGHT_REQUEST_MB_PER_SHARD_DEFAULT,
    MEMORY_MB_PER_SHARD_MAX, OFFSETS_REWRITE_BYTES_DEFAULT, REQUEST_BYTES_MAX_DEFAULT,
    REQUEST_BYTES_MAX_LIMIT, REQUEST_BYTES_MAX_MIN, REQUEST_READ_TIMEOUT_MS_DEFAULT,
    SEND_STALL_TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MIN, WRITE_BEHIND_MB_PER_SHARD_DEFAULT,
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
    /// Connections accepted at once from one client IP address; more are
    /// closed (Kafka's max.connections.per.ip). Default 1000.
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<u32>,
    /// Requests one connection may have in flight (read, not yet answered);
    /// beyond this the broker stops reading that connection. 1-1024.
    /// Default 32.
    #[arg(long, value_name = "N")]
    pub max_inflight_requests: Option<u32>,
    /// Request bytes read but not yet answered, per shard over all its
    /// connections, in MiB (Kafka's queued.max.request.bytes); reading
    /// pauses beyond it. Raised to the request size limit if below it.
    /// Default 512.
    #[arg(long, value_name = "MIB")]
    pub inflight_request_mb: Option<u64>,
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
    /// Appended bytes waiting to be written to disk, per shard, in MiB,
    /// under flush=interval and flush=never (flush=batch holds appends
    /// until their fdatasync instead). Producers wait beyond it. Default 128.
    #[arg(long, value_name = "MIB")]
    pub write_behind_mb: Option<u64>,
    /// Close a connection with nothing read, in flight or half received for
    /// this long (Kafka's connections.max.idle.ms). Default 600000.
    #[arg(long, value_name = "MS")]
    pub connections_max_idle_ms: Option<u64>,
    /// Once the first byte of a request has arrived, the whole request must
    /// arrive within this or the connection is closed (time paused by
    /// backpressure does not count). Default 30000.
    #[arg(long, value_name = "MS")]
    pub request_read_timeout_ms: Option<u64>,
    /// Close a connection whose response writes make no progress for this
    /// long (the client stopped reading). Default 30000.
    #[arg(long, value_name = "MS")]
    pub send_stall_timeout_ms: Option<u64>,
    /// Serve Prometheus metrics over plain HTTP at http://HOST:PORT/metrics
    /// (port 0: any free port; the bound one is logged as `serving metrics
    /// on HOST:PORT`). Default: off.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
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
    max_connections_per_ip: Option<u32>,
    max_inflight_requests: Option<u32>,
    inflight_request_mb: Option<u64>,
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
    write_behind_mb: Option<u64>,
    connections_max_idle_ms: Option<u64>,
    request_read_timeout_ms: Option<u64>,
    send_stall_timeout_ms: Option<u64>,
    metrics_listen: Option<String>,
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
    pub connections_per_ip_max: u32,
    pub inflight_requests_per_connection: u32,
    /// At least `request_bytes_max`.
    pub inflight_request_bytes_per_shard: u64,
    pub cache_bytes_per_shard: u64,
    pub write_behind_bytes_per_shard: u64,
    pub connection_idle_ms: u64,
    pub request_read_timeout_ms: u64,
    pub send_stall_timeout_ms: u64,
    /// Where to serve `/metrics`; `None`: no metrics listener.
    pub metrics_listen: Option<String>,
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
        let limits = Limits::resolve(&args_limits(&args), &file_limits(&file))?;
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
        let request_bytes_max = args
            .max_request_bytes
            .or(file.max_request_bytes)
            .unwrap_or(REQUEST_BYTES_MAX_DEFAULT);
        if !(REQUEST_BYTES_MAX_MIN..=REQUEST_BYTES_MAX_LIMIT).contains(&request_bytes_max) {
            bail!(
                "--max-request-bytes must be between {REQUEST_BYTES_MAX_MIN} and {REQUEST_BYTES_MAX_LIMIT}, not {request_bytes_max}"
            );
        }
        let metrics_listen = args.metrics_listen.or(file.metrics_listen);
        if let Some(m) = &metrics_listen {
            m.parse::<SocketAddr>().with_context(|| {
                format!("--metrics-listen {m}: expected HOST:PORT with an IP host")
            })?;
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
            request_bytes_max,
            connections_max: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(CONNECTIONS_MAX_DEFAULT),
            connections_per_ip_max: limits.connections_per_ip_max,
            inflight_requests_per_connection: limits.inflight_requests,
            inflight_request_bytes_per_shard: (limits.inflight_request_mb << 20)
                .max(u64::from(request_bytes_max)),
            cache_bytes_per_shard: limits.cache_mb << 20,
            write_behind_bytes_per_shard: limits.write_behind_mb << 20,
            connection_idle_ms: limits.idle_ms,
            request_read_timeout_ms: limits.request_read_timeout_ms,
            send_stall_timeout_ms: limits.send_stall_timeout_ms,
            metrics_listen,
            offsets_topic_partitions,
            groups,
        })
    }
}

/// The resource limits as given (flag or file), before defaults.
#[derive(Default)]
struct LimitArgs {
    connections_per_ip_max: Option<u32>,
    inflight_requests: Option<u32>,
    inflight_request_mb: Option<u64>,
    cache_mb: Option<u64>,
    write_behind_mb: Option<u64>,
    idle_ms: Option<u64>,
    request_read_timeout_ms: Option<u64>,
    send_stall_timeout_ms: Option<u64>,
}

fn args_limits(a: &Args) -> LimitArgs {
    LimitArgs {
        connections_per_ip_max: a.max_connections_per_ip,
        inflight_requests: a.max_inflight_requests,
        inflight_request_mb: a.inflight_request_mb,
        cache_mb: a.cache_mb,
        write_behind_mb: a.write_behind_mb,
        idle_ms: a.connections_max_idle_ms,
        request_read_timeout_ms: a.request_read_timeout_ms,
        send_stall_timeout_ms: a.send_stall_timeout_ms,
    }
}

fn file_limits(f: &FileConfig) -> LimitArgs {
    LimitArgs {
        connections_per_ip_max: f.max_connections_per_ip,
        inflight_requests: f.max_inflight_requests,
        inflight_request_mb: f.inflight_request_mb,
        cache_mb: f.cache_mb,
        write_behind_mb: f.write_behind_mb,
        idle_ms: f.connections_max_idle_ms,
        request_read_timeout_ms: f.request_read_timeout_ms,
        send_stall_timeout_ms: f.send_stall_timeout_ms,
    }
}

/// The resource limits, defaulted and checked against their bounds.
struct Limits {
    connections_per_ip_max: u32,
    inflight_requests: u32,
    inflight_request_mb: u64,
    cache_mb: u64,
    write_behind_mb: u64,
    idle_ms: u64,
    request_read_timeout_ms: u64,
    send_stall_timeout_ms: u64,
}

impl Limits {
    fn resolve(flag: &LimitArgs, file: &LimitArgs) -> Result<Limits> {
        let l = Limits {
            connections_per_ip_max: flag
                .connections_per_ip_max
                .or(file.connections_per_ip_max)
                .unwrap_or(CONNECTIONS_PER_IP_MAX_DEFAULT),
            inflight_requests: flag
                .inflight_requests
                .or(file.inflight_requests)
                .unwrap_or(INFLIGHT_REQUESTS_PER_CONNECTION_DEFAULT),
            inflight_request_mb: flag
                .inflight_request_mb
                .or(file.inflight_request_mb)
                .unwrap_or(INFLIGHT_REQUEST_MB_PER_SHARD_DEFAULT),
            cache_mb: flag
                .cache_mb
                .or(file.cache_mb)
                .unwrap_or(CACHE_MB_PER_SHARD_DEFAULT),
            write_behind_mb: flag
                .write_behind_mb
                .or(file.write_behind_mb)
                .unwrap_or(WRITE_BEHIND_MB_PER_SHARD_DEFAULT),
            idle_ms: flag
                .idle_ms
                .or(file.idle_ms)
                .unwrap_or(CONNECTION_IDLE_MS_DEFAULT),
            request_read_timeout_ms: flag
                .request_read_timeout_ms
                .or(file.request_read_timeout_ms)
                .unwrap_or(REQUEST_READ_TIMEOUT_MS_DEFAULT),
            send_stall_timeout_ms: flag
                .send_stall_timeout_ms
                .or(file.send_stall_timeout_ms)
                .unwrap_or(SEND_STALL_TIMEOUT_MS_DEFAULT),
        };
        if l.connections_per_ip_max == 0 {
            bail!("--max-connections-per-ip must be at least 1");
        }
        if !(1..=INFLIGHT_REQUESTS_PER_CONNECTION_MAX).contains(&l.inflight_requests) {
            bail!(
                "--max-inflight-requests must be between 1 and {INFLIGHT_REQUESTS_PER_CONNECTION_MAX}, not {}",
                l.inflight_requests
            );
        }
        for (flag, mb) in [
            ("cache-mb", l.cache_mb),
            ("write-behind-mb", l.write_behind_mb),
        ] {
            if mb > MEMORY_MB_PER_SHARD_MAX {
                bail!("--{flag} must be at most {MEMORY_MB_PER_SHARD_MAX}, not {mb}");
            }
        }
        for (flag, ms) in [
            ("connections-max-idle-ms", l.idle_ms),
            ("request-read-timeout-ms", l.request_read_timeout_ms),
            ("send-stall-timeout-ms", l.send_stall_timeout_ms),
        ] {
            if ms < TIMEOUT_MS_MIN {
                bail!("--{flag} must be at least {TIMEOUT_MS_MIN}, not {ms}");
            }
        }
        Ok(l)
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
            vec!["spindle", "--max-connections-per-ip", "0"],
            vec!["spindle", "--max-request-bytes", "0"],
            vec!["spindle", "--max-request-bytes", "2000000000"],
            vec!["spindle", "--max-inflight-requests", "0"],
            vec!["spindle", "--max-inflight-requests", "1025"],
            vec!["spindle", "--write-behind-mb", "1048577"],
            vec!["spindle", "--request-read-timeout-ms", "99"],
            vec!["spindle", "--connections-max-idle-ms", "0"],
            vec!["spindle", "--send-stall-timeout-ms", "5"],
            vec!["spindle", "--metrics-listen", "localhost:9644"],
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
    fn limits_default_and_come_from_flags_or_the_file() {
        let c = Config::from_args(Args::parse_from(["spindle"])).unwrap();
        assert_eq!(c.connections_per_ip_max, CONNECTIONS_PER_IP_MAX_DEFAULT);
        assert_eq!(
            c.inflight_requests_per_connection,
            INFLIGHT_REQUESTS_PER_CONNECTION_DEFAULT
        );
        assert_eq!(c.write_behind_bytes_per_shard, 128 << 20);
        assert_eq!(c.inflight_request_bytes_per_shard, 512 << 20);
        let small = [
            "spindle",
            "--inflight-request-mb",
            "1",
            "--max-request-bytes",
            "3000000",
        ];
        let c2 = Config::from_args(Args::parse_from(small)).unwrap();
        assert_eq!(
            c2.inflight_request_bytes_per_shard, 3_000_000,
            "never below a frame"
        );
        assert_eq!(c.connection_idle_ms, 600_000);
        assert_eq!(c.metrics_listen, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limits.toml");
        std::fs::write(
            &path,
            "max_connections_per_ip = 7\nmax_inflight_requests = 3\nwrite_behind_mb = 9\n\
             request_read_timeout_ms = 1500\nmetrics_listen = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "spindle",
            "--config",
            path.to_str().unwrap(),
            "--max-inflight-requests",
            "4",
            "--send-stall-timeout-ms",
            "2000",
        ]);
        let c = Config::from_args(args).unwrap();
        assert_eq!(c.connections_per_ip_max, 7);
        assert_eq!(c.inflight_requests_per_connection, 4, "the flag wins");
        assert_eq!(c.write_behind_bytes_per_shard, 9 << 20);
        assert_eq!(c.request_read_timeout_ms, 1500);
        assert_eq!(c.send_stall_timeout_ms, 2000);
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a.b:9092").unwrap(), ("a.b".into(), 9092));
        assert_eq!(split_host_port("[::1]:1").unwrap(), ("::1".into(), 1));
        assert!(split_host_port(":1").is_err());
    }
}
