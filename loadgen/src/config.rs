//! The resolved description of one run, whatever it came from (flags,
//! kafka-producer-perf-test style `--producer-props`, an OMB workload file).

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::batch::Compression;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    Produce,
    Consume,
    E2e,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KeyMode {
    None,
    RoundRobin,
    Random,
}

impl KeyMode {
    pub fn parse(s: &str) -> Result<KeyMode> {
        Ok(
            match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
                "none" | "nokey" => KeyMode::None,
                "roundrobin" | "keyroundrobin" => KeyMode::RoundRobin,
                "random" | "randomnano" => KeyMode::Random,
                _ => bail!("unknown key distribution {s:?} (none, round-robin, random)"),
            },
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn parse(s: &str) -> Result<Acks> {
        Ok(match s {
            "0" => Acks::None,
            "1" => Acks::Leader,
            "all" | "-1" => Acks::All,
            _ => bail!("acks must be 0, 1 or all, not {s:?}"),
        })
    }
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProducerConfig {
    pub acks: Acks,
    pub linger: Duration,
    pub batch_bytes: usize,
    #[serde(skip)]
    pub compression: Compression,
    pub compression_name: String,
    pub idempotence: bool,
    pub max_in_flight: usize,
    pub keys: KeyMode,
    pub request_timeout_ms: i32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::Leader,
            linger: Duration::from_millis(5),
            batch_bytes: 64 * 1024,
            compression: Compression::None,
            compression_name: "none".into(),
            idempotence: false,
            max_in_flight: 5,
            keys: KeyMode::None,
            request_timeout_ms: 30_000,
        }
    }
}

impl ProducerConfig {
    /// Applies Kafka producer properties (`k=v`), as kafka-producer-perf-test
    /// takes them. Unknown keys are an error rather than silently ignored,
    /// except the connection ones that the flags already carry.
    pub fn apply_prop(&mut self, prop: &str) -> Result<Option<String>> {
        let (k, v) = prop
            .split_once('=')
            .with_context(|| format!("producer prop {prop:?} is not k=v"))?;
        let (k, v) = (k.trim(), v.trim());
        let num = |v: &str| {
            v.parse::<u64>()
                .with_context(|| format!("{k}={v}: not a number"))
        };
        match k {
            "acks" => self.acks = Acks::parse(v)?,
            "linger.ms" => self.linger = Duration::from_millis(num(v)?),
            "batch.size" => self.batch_bytes = (num(v)? as usize).clamp(64, 16 << 20),
            "compression.type" => {
                self.compression = Compression::parse(v).with_context(|| {
                    format!("compression.type={v}: loadgen supports none, lz4, zstd")
                })?;
                self.compression_name = v.to_string();
            }
            "enable.idempotence" => {
                self.idempotence = match v {
                    "true" => true,
                    "false" => false,
                    _ => bail!("enable.idempotence must be true or false"),
                }
            }
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = (num(v)? as usize).clamp(1, 1024)
            }
            "request.timeout.ms" => self.request_timeout_ms = num(v)?.min(i32::MAX as u64) as i32,
            "key.distribution" => self.keys = KeyMode::parse(v)?,
            "bootstrap.servers" => return Ok(Some(v.to_string())),
            "client.id" | "key.serializer" | "value.serializer" | "buffer.memory" | "retries" => {}
            _ => bail!("unsupported producer property {k:?}"),
        }
        if self.idempotence && self.max_in_flight > 5 {
            bail!("enable.idempotence=true needs max.in.flight.requests.per.connection <= 5");
        }
        if self.idempotence && self.acks != Acks::All {
            bail!("enable.idempotence=true needs acks=all (as in the Java client)");
        }
        Ok(None)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum StartFrom {
    Earliest,
    Latest,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsumerConfig {
    pub from: StartFrom,
    pub group: bool,
    pub fetch_max_wait_ms: i32,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            from: StartFrom::Latest,
            group: false,
            fetch_max_wait_ms: 100,
            fetch_min_bytes: 1,
            fetch_max_bytes: 32 << 20,
            partition_max_bytes: 4 << 20,
        }
    }
}

/// Bounds on a run's shape, so a workload file cannot ask for unbounded
/// threads or memory.
pub const PRODUCERS_MAX: u32 = 256;
pub const CONSUMERS_MAX: u32 = 256;
pub const TOPICS_MAX: u32 = 1024;
pub const RECORD_BYTES_MAX: usize = 8 << 20;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSpec {
    pub name: String,
    pub bootstrap: String,
    pub topic_prefix: String,
    pub topics: u32,
    /// When set, exactly this topic (single-topic flags).
    pub topic: Option<String>,
    pub partitions: i32,
    pub replication: i16,
    pub mode: Mode,
    pub record_size: usize,
    pub num_records: Option<u64>,
    pub duration: Option<Duration>,
    pub warmup: Duration,
    /// Messages per second over all producers; <= 0 is unbounded.
    pub throughput: f64,
    pub producers_per_topic: u32,
    pub subscriptions_per_topic: u32,
    pub consumers_per_subscription: u32,
    pub producer: ProducerConfig,
    pub consumer: ConsumerConfig,
    pub backlog_bytes: u64,
    /// Seconds between live lines (0 = quiet).
    pub report_interval: Duration,
    /// The broker's process, when known (embedded, or --broker-pid): its
    /// CPU time over the measured window is reported.
    pub broker_pid: Option<u32>,
}

impl RunSpec {
    pub fn topic_names(&self) -> Vec<String> {
        match &self.topic {
            Some(t) => vec![t.clone()],
            None => (0..self.topics)
                .map(|i| format!("{}-{i}", self.topic_prefix))
                .collect(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.topics == 0 || self.topics > TOPICS_MAX {
            bail!("topics must be 1..={TOPICS_MAX}");
        }
        if self.partitions < 1 || self.partitions > 100_000 {
            bail!("partitions must be 1..=100000");
        }
        if self.producers_per_topic * self.topics > PRODUCERS_MAX {
            bail!("at most {PRODUCERS_MAX} producers in all");
        }
        if self.subscriptions_per_topic * self.consumers_per_subscription * self.topics
            > CONSUMERS_MAX
        {
            bail!("at most {CONSUMERS_MAX} consumers in all");
        }
        if self.record_size > RECORD_BYTES_MAX {
            bail!("record size above {RECORD_BYTES_MAX}");
        }
        if self.mode == Mode::E2e && self.record_size < crate::payload::STAMP_LEN {
            bail!(
                "e2e needs --record-size >= {} for the send stamp",
                crate::payload::STAMP_LEN
            );
        }
        if self.num_records.is_none() && self.duration.is_none() {
            bail!("give --num-records or --duration");
        }
        if self.mode != Mode::Consume && self.producers_per_topic == 0 {
            bail!("producersPerTopic must be at least 1");
        }
        if self.mode != Mode::Produce
            && self.consumers_per_subscription * self.subscriptions_per_topic == 0
        {
            bail!("this mode needs at least one consumer");
        }
        Ok(())
    }

    pub fn producers(&self) -> u32 {
        if self.mode == Mode::Consume {
            0
        } else {
            self.producers_per_topic * self.topics
        }
    }

    pub fn consumers(&self) -> u32 {
        if self.mode == Mode::Produce {
            0
        } else {
            self.subscriptions_per_topic * self.consumers_per_subscription * self.topics
        }
    }
}

/// Parses durations like `30s`, `5m`, `250ms`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("bad duration {s:?}"))?;
    if !n.is_finite() || n < 0.0 {
        bail!("bad duration {s:?}");
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("bad duration unit in {s:?} (ms, s, m, h)"),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_props_apply_and_refuse() {
        let mut p = ProducerConfig::default();
        p.apply_prop("acks=all").unwrap();
        p.apply_prop("linger.ms=10").unwrap();
        p.apply_prop("batch.size=131072").unwrap();
        p.apply_prop("compression.type=zstd").unwrap();
        p.apply_prop("enable.idempotence=true").unwrap();
        assert_eq!(p.acks, Acks::All);
        assert_eq!(p.linger, Duration::from_millis(10));
        assert_eq!(p.batch_bytes, 131072);
        assert_eq!(p.compression, Compression::Zstd);
        assert!(p.idempotence);
        assert_eq!(
            p.apply_prop("bootstrap.servers=127.0.0.1:9092").unwrap(),
            Some("127.0.0.1:9092".into())
        );
        assert!(p.apply_prop("compression.type=gzip").is_err());
        assert!(p.apply_prop("acks=2").is_err());
        assert!(p.apply_prop("nonsense").is_err());
        assert!(p.apply_prop("foo.bar=1").is_err());
        assert!(p
            .apply_prop("max.in.flight.requests.per.connection=10")
            .is_err());
        let mut q = ProducerConfig::default();
        assert!(
            q.apply_prop("enable.idempotence=true").is_err(),
            "needs acks=all"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }
}
