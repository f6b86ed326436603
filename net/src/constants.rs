//! Every bound the broker holds to, in one place. Those a deployment may
//! change are settings instead: their defaults and bounds are in
//! [`crate::config::defaults`].

/// Request bytes one connection may have in flight (read, not yet
/// answered); Kafka's queued.max.request.bytes, per connection. Never
/// below the frame limit, so one maximal request always fits.
pub const INFLIGHT_BYTES_PER_CONNECTION: u64 = 256 << 20;
/// Room a connection's read buffer grows by when full: READ_CHUNK_BYTES_MIN
/// for a new connection, doubling per growth up to READ_CHUNK_BYTES.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
pub const READ_CHUNK_BYTES_MIN: usize = 4 << 10;
/// A frame being received gets address space (not memory: pages are only
/// touched as bytes arrive) for up to this much of it at once, so a large
/// request is received without its start being copied every time the
/// buffer grows.
pub const READ_RESERVE_BYTES_MAX: usize = 8 << 20;
/// Capacity of each cross-shard channel (messages, not bytes: payloads
/// move with their buffers).
pub const SHARD_CHANNEL_CAPACITY: usize = 1024;
/// Topic-metadata commands queued for the single metadata writer.
pub const CATALOG_QUEUE_CAPACITY: usize = 256;
/// Partitions one CreateTopics/CreatePartitions may ask for.
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 10_000;
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Threads that send cold file ranges with sendfile(2).
pub const SENDFILE_THREADS: usize = 2;
/// A sendfile job whose socket stays full this long ends with what it
/// sent; the connection waits on its reactor before sending the rest.
pub const SENDFILE_POLL_MS: u64 = 10;
/// Longest wait between sendfile retries on a full socket.
pub const SENDFILE_RETRY_MS_MAX: u64 = 50;
/// Sendfile jobs queued for those threads.
pub const SENDFILE_QUEUE_CAPACITY: usize = 256;
/// Longest Fetch long-poll we honour, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 60_000;
/// Producer ids reserved per durable write of the id block.
pub const PRODUCER_ID_BLOCK: i64 = 1_000;
/// Locked memory glommio may register per shard for io_uring buffers; the
/// machine's RLIMIT_MEMLOCK (8 MiB) must hold all shards' rings and these.
pub const IO_MEMORY_BYTES_TOTAL: usize = 6 << 20;
pub const IO_MEMORY_BYTES_PER_SHARD_MAX: usize = 2 << 20;
pub const IO_MEMORY_BYTES_PER_SHARD_MIN: usize = 256 << 10;
/// io_uring submission queue depth per shard.
pub const RING_DEPTH: usize = 128;
/// How often each shard's group coordinator checks sessions and
/// rebalance deadlines.
pub const GROUP_TICK_MS: u64 = 100;
/// Longest rebalance timeout honoured, whatever a JoinGroup asks: a
/// JoinGroup waits at most this long for the others.
pub const GROUP_REBALANCE_TIMEOUT_MS_MAX: u64 = 30 * 60 * 1000;
/// Commit and metadata writes in flight per offsets partition.
pub const OFFSETS_WRITES_IN_FLIGHT: u64 = 1024;
/// Kafka's offset.metadata.max.bytes.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// Bytes read at once when replaying an offsets partition.
pub const OFFSETS_LOAD_READ_BYTES: u32 = 1 << 20;
/// Segments of the offsets topic are this fraction of the rewrite
/// threshold: small, so a rewrite can delete most of what it superseded.
pub const OFFSETS_SEGMENTS_PER_REWRITE: u64 = 4;
/// Connection rejections and bad-frame closes logged per second per reason;
/// the rest are counted and reported with the next line logged.
pub const CONNECTION_LOGS_PER_SECOND: u32 = 5;
/// Close notices from the shards to the acceptor's per-IP counts; one per
/// live connection at most, so this bound is never reached.
pub const CONNECTION_RELEASE_QUEUE_MIN: usize = 1_024;
/// Metrics HTTP request head read at most, and how long a scrape may
/// take to send it or to wait for the shards.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 << 10;
pub const METRICS_IO_TIMEOUT_MS: u64 = 5_000;
/// Scrape requests queued per shard.
pub const METRICS_QUEUE_CAPACITY: usize = 4;
/// A poisoned partition log is reopened after this long, doubling while it
/// keeps failing, up to the max (each reopen rescans its last segment).
pub const REOPEN_BACKOFF_MS_MIN: u64 = 250;
pub const REOPEN_BACKOFF_MS_MAX: u64 = 5_000;
