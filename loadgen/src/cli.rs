//! Command line: DESIGN.md's contract plus the flags
//! kafka-producer-perf-test users know.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::batch::Compression;
use crate::config::{
    parse_duration, Acks, ConsumerConfig, KeyMode, Mode, ProducerConfig, RunSpec, StartFrom,
};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Kafka load generator: throughput and latency against any Kafka-compatible broker.\n\
             With no subcommand (or no --bootstrap) it starts an embedded `spindle` broker and runs the default workload."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Produce records and report publish latency.
    Produce(RunArgs),
    /// Consume records (from earliest or latest) and report the rate.
    Consume(RunArgs),
    /// Produce and consume; latency from the send stamp in each record.
    E2e(RunArgs),
    /// Run an OpenMessaging Benchmark workload file.
    Run {
        workload: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Raise the rate step by step; report the highest rate holding a
    /// latency target and where it breaks.
    Sweep(crate::sweep::SweepArgs),
    /// Capacity plan: brokers, cores, disk and network for a target load.
    Plan(crate::plan::PlanArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Broker address HOST:PORT; without it an embedded spindle is started.
    #[arg(long, global = false)]
    pub bootstrap: Option<String>,
    /// Topic name (default: loadgen-bench).
    #[arg(long)]
    pub topic: Option<String>,
    /// Records to send (consume: to receive) before stopping.
    #[arg(long = "num-records")]
    pub num_records: Option<u64>,
    /// Run length, e.g. 30s, 5m (after the warm-up).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up left out of the results, e.g. 5s.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Record value size in bytes.
    #[arg(long = "record-size")]
    pub record_size: Option<usize>,
    /// Target messages per second over all producers, open loop; -1 = unbounded.
    #[arg(long, allow_hyphen_values = true)]
    pub throughput: Option<f64>,
    /// Partitions of the benchmark topic (created if missing).
    #[arg(long)]
    pub partitions: Option<i32>,
    #[arg(long = "replication-factor")]
    pub replication_factor: Option<i16>,
    /// Kafka producer properties k=v (acks, linger.ms, batch.size,
    /// compression.type, enable.idempotence, max.in.flight.requests.per.connection, ...).
    #[arg(long = "producer-props", num_args = 1..)]
    pub producer_props: Vec<String>,
    #[arg(long)]
    pub producers: Option<u32>,
    #[arg(long)]
    pub consumers: Option<u32>,
    /// 0, 1 or all.
    #[arg(long)]
    pub acks: Option<String>,
    #[arg(long = "linger-ms")]
    pub linger_ms: Option<u64>,
    #[arg(long = "batch-size")]
    pub batch_size: Option<usize>,
    /// none, lz4 or zstd.
    #[arg(long)]
    pub compression: Option<String>,
    #[arg(long)]
    pub idempotence: bool,
    /// Key distribution: none, round-robin, random.
    #[arg(long)]
    pub keys: Option<String>,
    #[arg(long = "max-in-flight")]
    pub max_in_flight: Option<usize>,
    /// Where consumers start: earliest or latest.
    #[arg(long)]
    pub from: Option<String>,
    /// Consume as a classic consumer group (default: assigned partitions).
    #[arg(long)]
    pub group: bool,
    /// Where result.json, .hgrm files, plots and index.html go
    /// (default results/<date>-<name>/).
    #[arg(long = "results-dir")]
    pub results_dir: Option<PathBuf>,
    /// Do not write a results directory.
    #[arg(long = "no-results")]
    pub no_results: bool,
    /// Name of the run (results directory, result.json).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds between live lines; 0 = quiet.
    #[arg(long = "report-interval")]
    pub report_interval: Option<f64>,
    /// Process id of the broker under test (on this machine): its CPU use
    /// over the measured window is reported. Set for the embedded broker.
    #[arg(long = "broker-pid")]
    pub broker_pid: Option<u32>,
    /// Extra argument for the embedded spindle (repeatable), e.g. --spindle-arg=--flush=never.
    #[arg(long = "spindle-arg", allow_hyphen_values = true)]
    pub spindle_args: Vec<String>,
}

pub const DEFAULT_TOPIC: &str = "loadgen-bench";

/// The default workload: what `loadgen` alone runs against the embedded
/// broker. 100-byte records on 1 topic x 16 partitions, acks=1, as fast as
/// possible, produced and consumed.
pub fn default_spec() -> RunSpec {
    RunSpec {
        name: "default".into(),
        bootstrap: String::new(),
        topic_prefix: "loadgen".into(),
        topics: 1,
        topic: Some(DEFAULT_TOPIC.into()),
        partitions: 16,
        replication: 1,
        mode: Mode::E2e,
        record_size: 100,
        num_records: None,
        duration: Some(Duration::from_secs(30)),
        warmup: Duration::from_secs(5),
        throughput: -1.0,
        producers_per_topic: 1,
        subscriptions_per_topic: 1,
        consumers_per_subscription: 1,
        producer: ProducerConfig::default(),
        consumer: ConsumerConfig::default(),
        backlog_bytes: 0,
        report_interval: Duration::from_secs(1),
        broker_pid: None,
    }
}

#[cfg(test)]
pub fn base_spec_for_tests() -> RunSpec {
    let mut s = default_spec();
    s.bootstrap = "127.0.0.1:9092".into();
    s
}

impl RunArgs {
    /// Resolves flags over `base`. Flags given win; the rest keep `base`.
    pub fn apply(&self, mut s: RunSpec, mode: Option<Mode>) -> Result<RunSpec> {
        if let Some(m) = mode {
            s.mode = m;
            // Flag-driven runs are sized by the flags, not the default.
            if self.num_records.is_some() && self.duration.is_none() {
                s.duration = None;
            }
            if self.warmup.is_none() {
                s.warmup = Duration::ZERO;
            }
        }
        if let Some(b) = &self.bootstrap {
            s.bootstrap = b.clone();
        }
        if let Some(t) = &self.topic {
            s.topic = Some(t.clone());
            s.topics = 1;
        }
        if let Some(n) = self.num_records {
            s.num_records = Some(n);
            if self.duration.is_none() {
                s.duration = None;
            }
        }
        if let Some(d) = self.duration {
            s.duration = Some(d);
        }
        if let Some(w) = self.warmup {
            s.warmup = w;
        }
        if let Some(r) = self.record_size {
            s.record_size = r;
        }
        if let Some(t) = self.throughput {
            s.throughput = t;
        }
        if let Some(p) = self.partitions {
            s.partitions = p;
        }
        if let Some(r) = self.replication_factor {
            s.replication = r;
        }
        if let Some(p) = self.producers {
            s.producers_per_topic = p;
        }
        if let Some(c) = self.consumers {
            s.consumers_per_subscription = c;
        }
        for prop in &self.producer_props {
            if let Some(b) = s.producer.apply_prop(prop)? {
                if self.bootstrap.is_none() {
                    s.bootstrap = b;
                }
            }
        }
        if let Some(a) = &self.acks {
            s.producer.acks = Acks::parse(a)?;
        }
        if let Some(l) = self.linger_ms {
            s.producer.linger = Duration::from_millis(l);
        }
        if let Some(b) = self.batch_size {
            s.producer.batch_bytes = b.clamp(64, 16 << 20);
        }
        if let Some(c) = &self.compression {
            s.producer.compression = match Compression::parse(c) {
                Some(c) => c,
                None => bail!("--compression must be none, lz4 or zstd"),
            };
            s.producer.compression_name = c.clone();
        }
        if self.idempotence {
            s.producer.idempotence = true;
            s.producer.acks = Acks::All;
            s.producer.max_in_flight = s.producer.max_in_flight.min(5);
        }
        if let Some(k) = &self.keys {
            s.producer.keys = KeyMode::parse(k)?;
        }
        if let Some(m) = self.max_in_flight {
            s.producer.max_in_flight = m.clamp(1, 1024);
        }
        if let Some(f) = &self.from {
            s.consumer.from = match f.as_str() {
                "earliest" => StartFrom::Earliest,
                "latest" => StartFrom::Latest,
                _ => bail!("--from must be earliest or latest"),
            };
        }
        if self.group {
            s.consumer.group = true;
        }
        if let Some(p) = self.broker_pid {
            s.broker_pid = Some(p);
        }
        if let Some(i) = self.report_interval {
            if i.is_nan() || i < 0.0 {
                bail!("--report-interval must be >= 0");
            }
            s.report_interval = Duration::from_secs_f64(i);
        }
        if let Some(n) = &self.name {
            s.name = n.clone();
        } else if let Some(m) = mode {
            s.name = format!(
                "{}-{}b-{}",
                match m {
                    Mode::Produce => "produce",
                    Mode::Consume => "consume",
                    Mode::E2e => "e2e",
                },
                s.record_size,
                if s.throughput > 0.0 {
                    format!("{}mps", s.throughput)
                } else {
                    "max".into()
                }
            );
        }
        if s.producer.idempotence && s.producer.acks != Acks::All {
            bail!("idempotence needs acks=all");
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn perf_test_flags() {
        let cli = parse(&[
            "produce",
            "--topic",
            "t",
            "--num-records",
            "1000000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "bootstrap.servers=127.0.0.1:9092",
            "acks=all",
            "linger.ms=2",
            "--partitions",
            "16",
        ]);
        let Some(Command::Produce(a)) = cli.command else {
            panic!("not produce")
        };
        let s = a.apply(default_spec(), Some(Mode::Produce)).unwrap();
        assert_eq!(s.bootstrap, "127.0.0.1:9092");
        assert_eq!(s.topic.as_deref(), Some("t"));
        assert_eq!(s.num_records, Some(1_000_000));
        assert_eq!(s.duration, None);
        assert_eq!(s.warmup, Duration::ZERO);
        assert_eq!(s.record_size, 100);
        assert_eq!(s.throughput, -1.0);
        assert_eq!(s.partitions, 16);
        assert_eq!(s.producer.acks, Acks::All);
        assert_eq!(s.producer.linger, Duration::from_millis(2));
        assert_eq!(s.mode, Mode::Produce);
        s.validate().unwrap();
    }

    #[test]
    fn design_contract_flags() {
        let cli = parse(&[
            "e2e",
            "--bootstrap",
            "127.0.0.1:9",
            "--topic",
            "x",
            "--duration",
            "10s",
            "--warmup",
            "2s",
            "--throughput",
            "50000",
            "--compression",
            "zstd",
            "--keys",
            "random",
            "--idempotence",
            "--results-dir",
            "/tmp/r",
            "--group",
            "--from",
            "earliest",
        ]);
        let Some(Command::E2e(a)) = cli.command else {
            panic!("not e2e")
        };
        assert_eq!(
            a.results_dir.as_deref(),
            Some(std::path::Path::new("/tmp/r"))
        );
        let s = a.apply(default_spec(), Some(Mode::E2e)).unwrap();
        assert_eq!(s.duration, Some(Duration::from_secs(10)));
        assert_eq!(s.warmup, Duration::from_secs(2));
        assert_eq!(s.producer.compression, Compression::Zstd);
        assert_eq!(s.producer.keys, KeyMode::Random);
        assert!(s.producer.idempotence);
        assert_eq!(s.producer.acks, Acks::All);
        assert!(s.consumer.group);
        assert_eq!(s.consumer.from, StartFrom::Earliest);
    }

    #[test]
    fn bare_loadgen_and_run_and_errors() {
        let cli = parse(&[]);
        assert!(cli.command.is_none());
        assert!(cli.run.bootstrap.is_none());
        let cli = parse(&["run", "w.yaml", "--bootstrap", "h:1"]);
        let Some(Command::Run { workload, run }) = cli.command else {
            panic!("not run")
        };
        assert_eq!(workload, PathBuf::from("w.yaml"));
        assert_eq!(run.bootstrap.as_deref(), Some("h:1"));
        assert!(Cli::try_parse_from(["loadgen", "produce", "--num-records", "many"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "produce", "--duration", "3 parsecs"]).is_err());
        let bad = parse(&["produce", "--compression", "gzip"]);
        let Some(Command::Produce(a)) = bad.command else {
            panic!()
        };
        assert!(a.apply(default_spec(), Some(Mode::Produce)).is_err());
        let bad = parse(&[
            "produce",
            "--acks",
            "1",
            "--producer-props",
            "enable.idempotence=true",
        ]);
        let Some(Command::Produce(a)) = bad.command else {
            panic!()
        };
        assert!(a.apply(default_spec(), Some(Mode::Produce)).is_err());
    }
}
