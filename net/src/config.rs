//! Broker settings, defined once: [`Settings`] is the one struct both the
//! command line (clap) and the TOML file of `--config FILE` (serde) fill,
//! flags over the file. [`defaults`] holds every default and bound in one
//! place, and [`Config::resolve`] applies the defaults and checks every
//! value, also in one place, into the [`Config`] the broker runs with.
//!
//! A new setting is a field of [`Settings`] (its doc comment is the
//! `--help` text, its name the flag and the TOML key), a default in
//! [`defaults`] and a line of [`Config::resolve`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;
use spindle_engine::{FlushMode, LogConfig};

/// Spindle: a Kafka-compatible broker, thread-per-core on io_uring.
#[derive(Debug, Default, Parser, Deserialize)]
#[command(name = "spindle", version, about, long_about = None)]
#[serde(deny_unknown_fields)]
pub struct Settings {
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
    // Not a key of the file itself: serde skips it, so the file refuses it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Default `retention.ms` of new topics (-1: keep forever). Default
    /// 604800000 (7 days).
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub retention_ms: Option<i64>,
    /// Default `retention.bytes` per partition (-1: unlimited). Default -1.
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true)]
    pub retention_bytes: Option<i64>,
    /// Default `segment.bytes` of new topics. Default 1073741824 (1 GiB).
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

impl Settings {
    /// The settings of a parsed command line: the file it names, if any,
    /// then every flag given over it.
    pub fn load(matches: &ArgMatches) -> Result<Settings> {
        let flags = Settings::from_arg_matches(matches)?;
        let Some(path) = flags.config else {
            return Ok(flags);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("read config file {}", path.display()))?;
        let mut settings = toml::from_str::<Settings>(&text)
            .with_context(|| format!("parse config file {}", path.display()))?;
        // Sets exactly the fields given on the command line.
        settings.update_from_arg_matches(matches)?;
        Ok(settings)
    }
}

/// Every default and bound of the settings. The defaults of the log
/// settings (`--retention-ms`, `--retention-bytes`, `--segment-bytes`,
/// `--flush`) are the engine's, [`LogConfig::default`].
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:9092";
    pub const DATA_DIR: &str = "./data";
    pub const NODE_ID: i32 = 0;
    /// `--shards`: the cores available, at most this many.
    pub const SHARDS_MAX: usize = 256;
    pub const RETENTION_CHECK_INTERVAL_MS: u64 = 300_000;
    pub const AUTO_CREATE_TOPICS: bool = true;
    pub const DEFAULT_PARTITIONS: u32 = 1;
    /// `--max-request-bytes` (Kafka's `socket.request.max.bytes`).
    pub const REQUEST_BYTES_MAX: u32 = 100 << 20;
    /// Range of `--max-request-bytes`: room for a request header, and at
    /// most 1 GiB (a frame is read whole into memory before it is handled).
    pub const REQUEST_BYTES_MAX_MIN: u32 = 64;
    pub const REQUEST_BYTES_MAX_LIMIT: u32 = 1 << 30;
    /// `--max-connections` (whole broker).
    pub const CONNECTIONS_MAX: u32 = 10_000;
    /// `--max-connections-per-ip` (Kafka's `max.connections.per.ip`, whose
    /// default is unlimited): one client host can take a tenth of the
    /// broker's connections.
    pub const CONNECTIONS_PER_IP_MAX: u32 = 1_000;
    /// `--max-inflight-requests`: requests read from one connection before
    /// its responses are written; the reader stops reading beyond this
    /// (Kafka clients pipeline 5).
    pub const INFLIGHT_REQUESTS_PER_CONNECTION: u32 = 32;
    /// Largest `--max-inflight-requests` accepted.
    pub const INFLIGHT_REQUESTS_PER_CONNECTION_MAX: u32 = 1_024;
    /// `--inflight-request-mb`: request bytes read and not yet answered on
    /// one shard, over all its connections (Kafka's
    /// queued.max.request.bytes, per shard). Never below the frame limit.
    pub const INFLIGHT_REQUEST_MB_PER_SHARD: u64 = 512;
    /// `--cache-mb` (batch cache per shard).
    pub const CACHE_MB_PER_SHARD: u64 = 256;
    /// `--write-behind-mb`: appended bytes not yet handed to the disk, per
    /// shard, under flush=interval and flush=never (each log also holds to
    /// the engine's WRITE_BEHIND_BYTES_MAX).
    pub const WRITE_BEHIND_MB_PER_SHARD: u64 = 128;
    /// Largest `--cache-mb` and `--write-behind-mb` accepted (1 TiB).
    pub const MEMORY_MB_PER_SHARD_MAX: u64 = 1 << 20;
    /// `--connections-max-idle-ms` (Kafka's `connections.max.idle.ms`): a
    /// connection with nothing read, nothing in flight and nothing half
    /// received for this long is closed.
    pub const CONNECTION_IDLE_MS: u64 = 600_000;
    /// `--request-read-timeout-ms`: once a request's first byte has
    /// arrived, the whole request must arrive within this (slow-loris
    /// bound). Time the reader spends paused by backpressure does not count.
    pub const REQUEST_READ_TIMEOUT_MS: u64 = 30_000;
    /// `--send-stall-timeout-ms`: a response write or sendfile that makes
    /// no progress for this long closes the connection, so a client that
    /// stops reading cannot pin its responses forever.
    pub const SEND_STALL_TIMEOUT_MS: u64 = 30_000;
    /// Smallest value of the three timeouts above (0 would close at once).
    pub const TIMEOUT_MS_MIN: u64 = 100;
    /// `--offsets-retention-minutes` (Kafka's offsets.retention.minutes).
    pub const OFFSETS_RETENTION_MINUTES: u64 = 7 * 24 * 60;
    pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS: u64 = 600_000;
    pub const GROUP_MIN_SESSION_TIMEOUT_MS: u64 = 6_000;
    pub const GROUP_MAX_SESSION_TIMEOUT_MS: u64 = 1_800_000;
    /// Kafka's is 3000.
    pub const GROUP_INITIAL_REBALANCE_DELAY_MS: u64 = 1_000;
    pub const GROUP_MAX_SIZE: u32 = 10_000;
    /// `--offsets-rewrite-bytes`: an offsets partition has its live state
    /// rewritten (and what it superseded deleted) once this much, and
    /// twice the live state, was appended since the last rewrite.
    pub const OFFSETS_REWRITE_BYTES: u64 = 64 << 20;
    /// Smallest `--offsets-rewrite-bytes` accepted.
    pub const OFFSETS_REWRITE_BYTES_MIN: u64 = 64 << 10;
}

/// The resolved configuration: every default applied, every value checked.
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

impl Config {
    /// The configuration of a command line (the program name first).
    pub fn parse_from<I, T>(args: I) -> Result<Config>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Settings::command().try_get_matches_from(args)?;
        Config::resolve(Settings::load(&matches)?)
    }

    /// Applies the defaults to `s` and checks every value.
    pub fn resolve(s: Settings) -> Result<Config> {
        use defaults as d;
        let flush: FlushMode = match s.flush {
            Some(f) => f.parse().map_err(|e| anyhow::anyhow!("--flush: {e}"))?,
            None => FlushMode::Batch,
        };
        let engine = LogConfig::default();
        let log = LogConfig {
            segment_bytes_max: s.segment_bytes.unwrap_or(engine.segment_bytes_max),
            retention_ms: s.retention_ms.map_or(engine.retention_ms, unlimited),
            retention_bytes: s.retention_bytes.map_or(engine.retention_bytes, unlimited),
            flush,
            ..engine
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = s.shards.unwrap_or(cores);
        if shards == 0 || shards > d::SHARDS_MAX {
            bail!(
                "--shards must be between 1 and {}, not {shards}",
                d::SHARDS_MAX
            );
        }
        let default_partitions = s.default_partitions.unwrap_or(d::DEFAULT_PARTITIONS);
        if default_partitions == 0 {
            bail!("--default-partitions must be at least 1");
        }
        let listen = s.listen.unwrap_or_else(|| d::LISTEN.into());
        listen
            .parse::<SocketAddr>()
            .with_context(|| format!("--listen {listen}: expected HOST:PORT with an IP host"))?;
        if s.offsets_topic_partitions == Some(0) {
            bail!("--offsets-topic-partitions must be at least 1");
        }
        let groups = GroupConfig {
            offsets_retention_ms: match s.offsets_retention_ms {
                Some(ms) => ms,
                None => s
                    .offsets_retention_minutes
                    .unwrap_or(d::OFFSETS_RETENTION_MINUTES)
                    .saturating_mul(60_000),
            },
            offsets_retention_check_interval_ms: s
                .offsets_retention_check_interval_ms
                .unwrap_or(d::OFFSETS_RETENTION_CHECK_INTERVAL_MS)
                .max(1),
            session_timeout_ms_min: s
                .group_min_session_timeout_ms
                .unwrap_or(d::GROUP_MIN_SESSION_TIMEOUT_MS),
            session_timeout_ms_max: s
                .group_max_session_timeout_ms
                .unwrap_or(d::GROUP_MAX_SESSION_TIMEOUT_MS),
            initial_rebalance_delay_ms: s
                .group_initial_rebalance_delay_ms
                .unwrap_or(d::GROUP_INITIAL_REBALANCE_DELAY_MS),
            members_max: s.group_max_size.unwrap_or(d::GROUP_MAX_SIZE),
            offsets_rewrite_bytes: s.offsets_rewrite_bytes.unwrap_or(d::OFFSETS_REWRITE_BYTES),
        };
        if groups.offsets_rewrite_bytes < d::OFFSETS_REWRITE_BYTES_MIN {
            bail!(
                "--offsets-rewrite-bytes must be at least {}",
                d::OFFSETS_REWRITE_BYTES_MIN
            );
        }
        if groups.session_timeout_ms_min > groups.session_timeout_ms_max {
            bail!("--group-min-session-timeout-ms is above --group-max-session-timeout-ms");
        }
        if let Some(a) = &s.advertise {
            split_host_port(a).with_context(|| format!("--advertise {a}"))?;
        }
        let request_bytes_max = s.max_request_bytes.unwrap_or(d::REQUEST_BYTES_MAX);
        let (min, max) = (d::REQUEST_BYTES_MAX_MIN, d::REQUEST_BYTES_MAX_LIMIT);
        if !(min..=max).contains(&request_bytes_max) {
            bail!("--max-request-bytes must be between {min} and {max}, not {request_bytes_max}");
        }
        if let Some(m) = &s.metrics_listen {
            m.parse::<SocketAddr>().with_context(|| {
                format!("--metrics-listen {m}: expected HOST:PORT with an IP host")
            })?;
        }
        let connections_per_ip_max = s
            .max_connections_per_ip
            .unwrap_or(d::CONNECTIONS_PER_IP_MAX);
        if connections_per_ip_max == 0 {
            bail!("--max-connections-per-ip must be at least 1");
        }
        let inflight_requests = s
            .max_inflight_requests
            .unwrap_or(d::INFLIGHT_REQUESTS_PER_CONNECTION);
        let max = d::INFLIGHT_REQUESTS_PER_CONNECTION_MAX;
        if !(1..=max).contains(&inflight_requests) {
            bail!("--max-inflight-requests must be between 1 and {max}, not {inflight_requests}");
        }
        let inflight_request_mb = s
            .inflight_request_mb
            .unwrap_or(d::INFLIGHT_REQUEST_MB_PER_SHARD);
        let cache_mb = s.cache_mb.unwrap_or(d::CACHE_MB_PER_SHARD);
        let write_behind_mb = s.write_behind_mb.unwrap_or(d::WRITE_BEHIND_MB_PER_SHARD);
        for (flag, mb) in [("cache-mb", cache_mb), ("write-behind-mb", write_behind_mb)] {
            let max = d::MEMORY_MB_PER_SHARD_MAX;
            if mb > max {
                bail!("--{flag} must be at most {max}, not {mb}");
            }
        }
        let idle_ms = s.connections_max_idle_ms.unwrap_or(d::CONNECTION_IDLE_MS);
        let request_read_timeout_ms = s
            .request_read_timeout_ms
            .unwrap_or(d::REQUEST_READ_TIMEOUT_MS);
        let send_stall_timeout_ms = s.send_stall_timeout_ms.unwrap_or(d::SEND_STALL_TIMEOUT_MS);
        for (flag, ms) in [
            ("connections-max-idle-ms", idle_ms),
            ("request-read-timeout-ms", request_read_timeout_ms),
            ("send-stall-timeout-ms", send_stall_timeout_ms),
        ] {
            if ms < d::TIMEOUT_MS_MIN {
                bail!("--{flag} must be at least {}, not {ms}", d::TIMEOUT_MS_MIN);
            }
        }
        Ok(Config {
            listen,
            data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from(d::DATA_DIR)),
            advertise: s.advertise,
            shards,
            node_id: s.node_id.unwrap_or(d::NODE_ID),
            log,
            retention_check_interval_ms: s
                .retention_check_interval_ms
                .unwrap_or(d::RETENTION_CHECK_INTERVAL_MS)
                .max(1),
            auto_create_topics: s.auto_create_topics.unwrap_or(d::AUTO_CREATE_TOPICS),
            default_partitions,
            request_bytes_max,
            connections_max: s.max_connections.unwrap_or(d::CONNECTIONS_MAX),
            connections_per_ip_max,
            inflight_requests_per_connection: inflight_requests,
            inflight_request_bytes_per_shard: (inflight_request_mb << 20)
                .max(u64::from(request_bytes_max)),
            cache_bytes_per_shard: cache_mb << 20,
            write_behind_bytes_per_shard: write_behind_mb << 20,
            connection_idle_ms: idle_ms,
            request_read_timeout_ms,
            send_stall_timeout_ms,
            metrics_listen: s.metrics_listen,
            offsets_topic_partitions: s.offsets_topic_partitions,
            groups,
        })
    }
}

/// A retention given as a number where -1 (any negative) is unlimited.
fn unlimited(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
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
        let c = Config::parse_from([
            "spindle",
            "--config",
            path.to_str().unwrap(),
            "--shards",
            "2",
            "--retention-ms",
            "-1",
        ])
        .unwrap();
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
            assert!(Config::parse_from(bad).is_err());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        assert!(Config::parse_from(["spindle", "--config", path.to_str().unwrap()]).is_err());
    }

    #[test]
    fn limits_default_and_come_from_flags_or_the_file() {
        let c = Config::parse_from(["spindle"]).unwrap();
        assert_eq!(c.connections_per_ip_max, defaults::CONNECTIONS_PER_IP_MAX);
        assert_eq!(
            c.inflight_requests_per_connection,
            defaults::INFLIGHT_REQUESTS_PER_CONNECTION
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
        let c2 = Config::parse_from(small).unwrap();
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
        let c = Config::parse_from([
            "spindle",
            "--config",
            path.to_str().unwrap(),
            "--max-inflight-requests",
            "4",
            "--send-stall-timeout-ms",
            "2000",
        ])
        .unwrap();
        assert_eq!(c.connections_per_ip_max, 7);
        assert_eq!(c.inflight_requests_per_connection, 4, "the flag wins");
        assert_eq!(c.write_behind_bytes_per_shard, 9 << 20);
        assert_eq!(c.request_read_timeout_ms, 1500);
        assert_eq!(c.send_stall_timeout_ms, 2000);
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn the_file_has_a_key_for_every_flag_but_config() {
        let unknown = |key: &str| {
            toml::from_str::<Settings>(&format!("{key} = 1"))
                .is_err_and(|e| e.to_string().contains("unknown field"))
        };
        let mut keys = 0;
        for a in Settings::command().get_arguments() {
            let Some(long) = a.get_long().filter(|l| !["help", "version"].contains(l)) else {
                continue;
            };
            let key = long.replace('-', "_");
            assert_eq!(unknown(&key), key == "config", "TOML key {key}");
            keys += 1;
        }
        assert!(keys >= 30, "only {keys} flags");
    }

    /// The `--help` text states each default; stating it on the command
    /// line must change nothing, so the text and [`defaults`] agree.
    #[test]
    fn help_states_the_defaults() {
        let base = format!("{:?}", Config::parse_from(["spindle"]).unwrap());
        let mut checked = 0;
        for a in Settings::command().get_arguments() {
            let (Some(long), Some(help)) = (a.get_long(), a.get_help()) else {
                continue;
            };
            let help = help.to_string();
            // The last "Default " starts the sentence that states it.
            let Some((_, rest)) = help.rsplit_once("Default ") else {
                continue;
            };
            let value = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches('.');
            let c = Config::parse_from(["spindle", &format!("--{long}"), value])
                .unwrap_or_else(|e| panic!("--{long} {value}: {e}"));
            assert_eq!(format!("{c:?}"), base, "--{long}: help says {value}");
            checked += 1;
        }
        assert!(checked >= 25, "only {checked} defaults checked");
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a.b:9092").unwrap(), ("a.b".into(), 9092));
        assert_eq!(split_host_port("[::1]:1").unwrap(), ("::1".into(), 1));
        assert!(split_host_port(":1").is_err());
    }
}
