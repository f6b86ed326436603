//! Topic configs: which Kafka topic configs Spindle understands, how they
//! turn into the engine's [`LogConfig`], and what DescribeConfigs shows.

use std::collections::BTreeMap;

use spindle_engine::LogConfig;

use crate::config::Config;

/// Configs that change how the log behaves.
const LOG_KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
];
/// Configs accepted and shown, with no effect beyond that on a single
/// broker without compaction (clients and tools set them routinely).
const INERT_KEYS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("min.insync.replicas", "1"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("unclean.leader.election.enable", "false"),
];

fn parse_i64(key: &str, v: &str) -> Result<i64, String> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| format!("{key}={v}: not an integer"))
}

/// Checks one topic config; `Err` holds the message for INVALID_CONFIG.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    if LOG_KEYS.contains(&key) {
        let v = parse_i64(key, value)?;
        let min = match key {
            "segment.bytes" => 14,
            "segment.ms" => 1,
            _ => -1,
        };
        if v < min {
            return Err(format!("{key}={value}: must be at least {min}"));
        }
        return Ok(());
    }
    match key {
        "cleanup.policy" if value != "delete" => {
            Err(format!("cleanup.policy={value}: only delete is supported"))
        }
        _ if INERT_KEYS.iter().any(|(k, _)| *k == key) => Ok(()),
        _ => Err(format!("unknown topic config {key}")),
    }
}

/// The engine config of a topic: broker defaults, overridden by the
/// topic's own configs (validated when they were set).
pub fn log_config(broker: &Config, topic: &BTreeMap<String, String>) -> LogConfig {
    let mut c = broker.log.clone();
    let get = |k: &str| topic.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    if let Some(v) = get("retention.ms") {
        c.retention_ms = u64::try_from(v).ok();
    }
    if let Some(v) = get("retention.bytes") {
        c.retention_bytes = u64::try_from(v).ok();
    }
    if let Some(v) = get("segment.bytes") {
        c.segment_bytes_max = u64::try_from(v).unwrap_or(c.segment_bytes_max);
    }
    if let Some(v) = get("segment.ms") {
        c.segment_ms_max = u64::try_from(v).ok();
    }
    c
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-1".to_string(), |v| v.to_string())
}

/// Every config of a topic as DescribeConfigs shows it: (name, value,
/// is_default).
pub fn describe(broker: &Config, topic: &BTreeMap<String, String>) -> Vec<(String, String, bool)> {
    let d = &broker.log;
    let mut out: Vec<(String, String, bool)> = vec![
        ("retention.ms".into(), opt(d.retention_ms), true),
        ("retention.bytes".into(), opt(d.retention_bytes), true),
        (
            "segment.bytes".into(),
            d.segment_bytes_max.to_string(),
            true,
        ),
        ("segment.ms".into(), opt(d.segment_ms_max), true),
        ("flush.mode".into(), d.flush.to_string(), true),
    ];
    out.extend(
        INERT_KEYS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string(), true)),
    );
    for (k, v) in topic {
        match out.iter_mut().find(|(n, _, _)| n == k) {
            Some(e) => {
                e.1 = v.clone();
                e.2 = false;
            }
            None => out.push((k.clone(), v.clone(), false)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_configs_override_broker_defaults() {
        let broker = Config::parse_from(["spindle"]).unwrap();
        let mut t = BTreeMap::new();
        t.insert("retention.ms".to_string(), "-1".to_string());
        t.insert("segment.bytes".to_string(), "1048576".to_string());
        let c = log_config(&broker, &t);
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.segment_bytes_max, 1 << 20);
        let d = describe(&broker, &t);
        assert!(d
            .iter()
            .any(|(k, v, def)| k == "retention.ms" && v == "-1" && !def));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("segment.bytes", "1").is_err());
        assert!(validate("cleanup.policy", "compact").is_err());
        assert!(validate("no.such.thing", "1").is_err());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("min.insync.replicas", "2").is_ok());
    }
}
