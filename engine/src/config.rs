//! Per-log configuration.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Group commit: an append resolves after the fdatasync covering it.
    Batch,
    /// Appends resolve once buffered; a flusher syncs every interval.
    Interval(Duration),
    /// Appends resolve once buffered; the OS writes when it likes
    /// (Kafka's default, for comparison).
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid flush mode {0:?}: expected batch, interval:MS or never")]
pub struct ParseFlushModeError(pub String);

impl FromStr for FlushMode {
    type Err = ParseFlushModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "batch" => Ok(FlushMode::Batch),
            "never" => Ok(FlushMode::Never),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .filter(|ms| *ms >= crate::constants::FLUSH_INTERVAL_MS_MIN)
                    .ok_or_else(|| ParseFlushModeError(s.to_string()))?;
                Ok(FlushMode::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for FlushMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushMode::Batch => write!(f, "batch"),
            FlushMode::Interval(d) => write!(f, "interval:{}", d.as_millis()),
            FlushMode::Never => write!(f, "never"),
        }
    }
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Topic-level log settings, named after Kafka's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`
    pub segment_bytes_max: u64,
    /// `segment.ms`
    pub segment_ms_max: Option<u64>,
    /// `retention.bytes` (None = -1, unlimited)
    pub retention_bytes: Option<u64>,
    /// `retention.ms` (None = -1, unlimited)
    pub retention_ms: Option<u64>,
    /// `index.interval.bytes`
    pub index_interval_bytes: u32,
    pub flush: FlushMode,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_ms_max: Some(7 * DAY_MS),
            retention_bytes: None,
            retention_ms: Some(7 * DAY_MS),
            index_interval_bytes: 4096,
            flush: FlushMode::Batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_mode_round_trips() {
        for s in ["batch", "never", "interval:250"] {
            let m: FlushMode = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert!("interval:".parse::<FlushMode>().is_err());
        assert!("interval:0".parse::<FlushMode>().is_err());
        assert!("sometimes".parse::<FlushMode>().is_err());
    }
}
