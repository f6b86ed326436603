//! OpenMessaging Benchmark workload files
//! (`io.openmessaging.benchmark.Workload`), mapped onto a [`RunSpec`].

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::{KeyMode, Mode, RunSpec};

#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub topics: u32,
    pub partitions_per_topic: i32,
    #[serde(default)]
    pub key_distributor: Option<String>,
    pub message_size: usize,
    #[serde(default)]
    pub use_randomized_payloads: Option<bool>,
    #[serde(default)]
    pub random_bytes_ratio: Option<f64>,
    #[serde(default)]
    pub randomized_payload_pool_size: Option<u32>,
    #[serde(default)]
    pub payload_file: Option<String>,
    pub subscriptions_per_topic: u32,
    #[serde(default)]
    pub producers_per_topic: Option<u32>,
    pub consumer_per_subscription: u32,
    /// Messages per second over all producers; 0 = as fast as possible.
    pub producer_rate: f64,
    #[serde(default, rename = "consumerBacklogSizeGB")]
    pub consumer_backlog_size_gb: f64,
    #[serde(default)]
    pub backlog_drain_ratio: Option<f64>,
    pub test_duration_minutes: f64,
    /// OMB's default warm-up is one minute.
    #[serde(default = "default_warmup")]
    pub warmup_duration_minutes: f64,
}

fn default_warmup() -> f64 {
    1.0
}

pub fn parse(text: &str) -> Result<Workload> {
    let w: Workload = serde_yaml::from_str(text).context("parse OMB workload")?;
    if w.topics == 0 || w.partitions_per_topic <= 0 || w.message_size == 0 {
        bail!(
            "workload {}: topics, partitionsPerTopic and messageSize must be positive",
            w.name
        );
    }
    if w.test_duration_minutes.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        || w.warmup_duration_minutes.is_nan()
        || w.warmup_duration_minutes < 0.0
    {
        bail!("workload {}: durations must be positive", w.name);
    }
    if w.producer_rate.is_nan()
        || w.producer_rate < 0.0
        || w.consumer_backlog_size_gb.is_nan()
        || w.consumer_backlog_size_gb < 0.0
    {
        bail!(
            "workload {}: producerRate and consumerBacklogSizeGB must be >= 0",
            w.name
        );
    }
    Ok(w)
}

pub fn load(path: &Path) -> Result<Workload> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

impl Workload {
    /// Applies the workload onto `base` (which carries the bootstrap and
    /// producer/consumer settings from the command line).
    pub fn apply(&self, mut base: RunSpec) -> Result<RunSpec> {
        base.name = self.name.clone();
        base.topics = self.topics;
        base.topic = None;
        base.partitions = self.partitions_per_topic;
        base.record_size = self.message_size;
        base.producers_per_topic = self.producers_per_topic.unwrap_or(1);
        base.subscriptions_per_topic = self.subscriptions_per_topic;
        base.consumers_per_subscription = self.consumer_per_subscription;
        base.mode = if self.subscriptions_per_topic == 0 || self.consumer_per_subscription == 0 {
            Mode::Produce
        } else {
            Mode::E2e
        };
        if base.mode == Mode::E2e && self.message_size < crate::payload::STAMP_LEN {
            base.mode = Mode::Produce;
            eprintln!(
                "loadgen: messageSize {} is below the {}-byte e2e stamp; running produce only",
                self.message_size,
                crate::payload::STAMP_LEN
            );
        }
        base.throughput = if self.producer_rate > 0.0 {
            self.producer_rate
        } else {
            -1.0
        };
        if let Some(k) = &self.key_distributor {
            base.producer.keys = KeyMode::parse(k)?;
        }
        base.duration = Some(Duration::from_secs_f64(self.test_duration_minutes * 60.0));
        base.num_records = None;
        base.warmup = Duration::from_secs_f64(self.warmup_duration_minutes * 60.0);
        base.backlog_bytes = (self.consumer_backlog_size_gb * 1e9) as u64;
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<std::path::PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_shipped_workload_parses_and_maps() {
        let files = shipped();
        assert!(files.len() >= 8, "workloads shipped: {files:?}");
        for f in files {
            let w = load(&f).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
            let spec = w.apply(crate::cli::base_spec_for_tests()).unwrap();
            spec.validate()
                .unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
            assert_eq!(spec.partitions, w.partitions_per_topic);
            assert_eq!(spec.record_size, w.message_size);
            assert_eq!(spec.topic_names().len() as u32, w.topics);
        }
    }

    #[test]
    fn omb_example_maps_field_by_field() {
        let w = parse(
            "name: 1 topic / 16 partitions / 1Kb\n\
             topics: 1\npartitionsPerTopic: 16\nkeyDistributor: \"KEY_ROUND_ROBIN\"\nmessageSize: 1024\n\
             payloadFile: \"payload/payload-1Kb.data\"\nsubscriptionsPerTopic: 2\nconsumerPerSubscription: 3\n\
             producersPerTopic: 4\nproducerRate: 50000\nconsumerBacklogSizeGB: 1.5\ntestDurationMinutes: 15\n\
             warmupDurationMinutes: 2\n",
        )
        .unwrap();
        let s = w.apply(crate::cli::base_spec_for_tests()).unwrap();
        assert_eq!(s.name, "1 topic / 16 partitions / 1Kb");
        assert_eq!(s.mode, Mode::E2e);
        assert_eq!(s.producers_per_topic, 4);
        assert_eq!(s.subscriptions_per_topic, 2);
        assert_eq!(s.consumers_per_subscription, 3);
        assert_eq!(s.throughput, 50000.0);
        assert_eq!(s.producer.keys, KeyMode::RoundRobin);
        assert_eq!(s.duration, Some(Duration::from_secs(900)));
        assert_eq!(s.warmup, Duration::from_secs(120));
        assert_eq!(s.backlog_bytes, 1_500_000_000);
        assert_eq!(s.consumers(), 6);
    }

    #[test]
    fn bad_workloads_are_refused() {
        assert!(parse("name: x\ntopics: 0\npartitionsPerTopic: 1\nmessageSize: 1\nsubscriptionsPerTopic: 1\nconsumerPerSubscription: 1\nproducerRate: 1\ntestDurationMinutes: 1\n").is_err());
        assert!(parse("name: x\ntopics: 1\npartitionsPerTopic: 1\nmessageSize: 1\nsubscriptionsPerTopic: 1\nconsumerPerSubscription: 1\nproducerRate: 1\ntestDurationMinutes: 1\nbogusField: 3\n").is_err());
        assert!(parse("name: x\ntopics: 1\n").is_err());
        assert!(parse("{{{").is_err());
    }
}
