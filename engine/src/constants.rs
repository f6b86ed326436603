//! Every bound of the engine in one place.

/// Direct-I/O alignment of file positions, lengths and buffers. 4 KiB covers
/// every device and filesystem block size Spindle runs on.
pub const ALIGN: u64 = 4096;

/// Size of one write-behind buffer of the appender.
pub const WRITE_BUF_BYTES: usize = 1 << 20;

/// Bytes a log may hold in write-behind buffers before an append waits for
/// the disk (the bound is soft by at most one append call).
pub const WRITE_BEHIND_BYTES_MAX: u64 = 32 << 20;

/// Writes in flight per log.
pub const WRITE_QUEUE_DEPTH: usize = 32;

/// Buffers one write-behind round takes before it ends (and lets a flush in).
pub const WRITE_ROUND_OPS_MAX: usize = 256;

/// Full write buffers kept for reuse per shard (by `DmaStorage`).
pub const WRITE_BUF_POOL_PER_SHARD: usize = 40;

/// Segments grow their preallocation in steps of this size.
pub const PREALLOC_STEP_BYTES: u64 = 32 << 20;

/// Under `flush=batch` segments are zero-filled this far ahead of the
/// appender, so that appends overwrite written blocks and an fdatasync
/// needs no journal commit for extent conversion.
pub const ZERO_FILL_AHEAD_BYTES: u64 = 8 << 20;

/// Zero fill runs only for write rounds smaller than this: larger syncs
/// amortize the journal commit, and filling would double their bytes.
pub const ZERO_FILL_ROUND_BYTES_MAX: u64 = 512 << 10;

/// Size of one zero-fill write.
pub const ZERO_FILL_WRITE_BYTES: u64 = 1 << 20;

/// Bytes read at once when scanning batch headers on the read path.
pub const READ_SCAN_WINDOW_BYTES: usize = 64 << 10;

/// Bytes read at once by the recovery scan.
pub const RECOVERY_READ_BYTES: usize = 16 << 20;

/// Recovery splits its reads into concurrent reads of this size.
pub const READ_CHUNK_BYTES: usize = 2 << 20;

/// Bytes recovery reads where the valid log ends to tell a never-written
/// (zero) tail from a torn or corrupt one: one block.
pub const TAIL_PROBE_BYTES: usize = 4096;

/// Recovery logs its progress every this many bytes scanned.
pub const RECOVERY_PROGRESS_BYTES: u64 = 256 << 20;

/// Batches remembered per idempotent producer (Kafka's value).
pub const PRODUCER_BATCHES_KEPT: usize = 5;

/// Idempotent producers remembered per log; the least recently used is
/// forgotten beyond this.
pub const PRODUCERS_MAX: usize = 10_000;

/// Largest batch accepted, whatever the segment size.
pub const BATCH_BYTES_MAX: u64 = 64 << 20;

/// A write round's writes or fdatasync taking longer than this is logged
/// (at most once per SLOW_IO_LOG_INTERVAL_MS per log).
pub const SLOW_IO_MS: u64 = 50;
pub const SLOW_IO_LOG_INTERVAL_MS: u64 = 10_000;

/// Interval of the flusher under `flush=interval:MS` is at least this.
pub const FLUSH_INTERVAL_MS_MIN: u64 = 1;

/// How long an appender that filled a write buffer steps off the CPU under
/// flush=interval and flush=never: any timer makes it wait for the next
/// reactor poll, which submits the buffer's write (see `PartitionLog::append`).
pub const REACTOR_YIELD: std::time::Duration = std::time::Duration::from_micros(1);
