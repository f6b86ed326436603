//! The v2 record batch (magic 2), Kafka's `DefaultRecordBatch`: the one
//! definition of its layout for the broker, the engine and loadgen.
//!
//! Layout: baseOffset i64 | batchLength i32 (bytes after this field) |
//! partitionLeaderEpoch i32 | magic i8 | crc u32 (CRC-32C of everything
//! after it) | attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 |
//! maxTimestamp i64 | producerId i64 | producerEpoch i16 | baseSequence i32
//! | records i32 | records. A record: length varlong | attributes i8 |
//! timestampDelta varlong | offsetDelta varlong | key (varlong length, -1
//! null) | value (same) | headers count varlong | headers.
//!
//! baseOffset and partitionLeaderEpoch lie before the CRC's coverage, so a
//! log assigns offsets and epochs in place without recomputing it.
//!
//! - [`header`]: the fixed header, its checks, the CRC, stamping in place,
//!   and the walk over whole batches in a buffer.
//! - [`record`]: the records of an uncompressed batch body, read in place.
//! - [`builder`]: a batch built record by record, compressed by the caller
//!   if it wants (the codec links no compression library).

pub mod builder;
pub mod header;
pub mod record;

pub use builder::{BatchBuilder, ProducerFields};
pub use header::{
    crc_of, seal_crc, set_base_offset, set_partition_leader_epoch, BatchHeader, Batches,
};
pub use record::{RawRecord, Records};

/// Bytes of the fixed header before the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// baseOffset (8) + batchLength (4): the bytes batchLength does not count.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;

pub const BASE_OFFSET_AT: usize = 0;
pub const BATCH_LENGTH_AT: usize = 8;
pub const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
/// Where the CRC-32C coverage starts and runs to the end of the batch.
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub const BASE_TIMESTAMP_AT: usize = 27;
pub const MAX_TIMESTAMP_AT: usize = 35;
pub const PRODUCER_ID_AT: usize = 43;
pub const PRODUCER_EPOCH_AT: usize = 51;
pub const BASE_SEQUENCE_AT: usize = 53;
pub const RECORDS_COUNT_AT: usize = 57;

/// attributes bits 0-2: none, gzip, snappy, lz4, zstd.
pub const COMPRESSION_MASK: i16 = 0x7;
/// attributes bit 5: a control batch (transaction markers), no user records.
pub const CONTROL_FLAG: i16 = 0x20;

/// Why bytes are not a valid batch. Each is bad input, never a bug here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("{0} bytes is shorter than a batch header")]
    Short(usize),
    #[error("unsupported magic {0}")]
    Magic(i8),
    #[error("batch length {0} too small")]
    LengthTooSmall(i32),
    #[error("batch length does not match its buffer")]
    LengthMismatch,
    #[error("record count {records_count} does not match lastOffsetDelta {last_offset_delta}")]
    Count {
        records_count: i32,
        last_offset_delta: i32,
    },
    #[error("CRC-32C mismatch: header {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
}
