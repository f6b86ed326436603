//! One error enum per failure domain.

use std::io;
use std::path::PathBuf;

/// Why an append was refused. Nothing of a refused call is written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A batch failed its checks (maps to CORRUPT_MESSAGE).
    #[error("corrupt batch: {0}")]
    Corrupt(String),
    /// A batch is well formed but not acceptable (maps to INVALID_RECORD).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// A batch larger than a segment or the engine's limit.
    #[error("batch of {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge { size: u64, max: u64 },
    /// An earlier write or fsync failed: nothing more is accepted until the
    /// log is reopened (maps to KAFKA_STORAGE_ERROR, retriable).
    #[error("log is poisoned by an earlier I/O failure; it must be reopened")]
    Poisoned,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("log is closed")]
    Closed,
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} has epoch {current}, batch has older epoch {got}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// A follower's batches do not continue its log: the first must start
    /// at the log end offset and each the offset after the one before
    /// (Kafka's UnexpectedAppendOffsetException).
    #[error("replicated batch starts at offset {got}, expected {expected}")]
    OffsetMismatch { expected: i64, got: i64 },
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        log_start_offset: i64,
        high_watermark: i64,
    },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// Data on disk does not parse where the index says a batch is.
    #[error("corrupt data in {segment} at position {position}: {reason}")]
    Corrupt {
        segment: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("log is poisoned by an earlier I/O failure; it must be reopened")]
    Poisoned,
    #[error("log is closed")]
    Closed,
}

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A sealed segment holds a batch that fails its checks. The log is not
    /// opened: truncating here would drop acknowledged data after it.
    #[error("corrupt batch in sealed segment {segment} at position {position}: {reason}")]
    Corrupt {
        segment: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("unexpected file in partition directory: {0}")]
    BadFileName(PathBuf),
}

impl RecoveryError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> RecoveryError {
        let path = path.into();
        move |source| RecoveryError::Io { path, source }
    }
}
