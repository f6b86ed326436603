//! Every bound the broker holds to, in one place. Those a deployment may
//! want to change are defaults of [`crate::config::Config`] instead.

/// Default for `--max-request-bytes` (Kafka's `socket.request.max.bytes`).
pub const REQUEST_BYTES_MAX_DEFAULT: u32 = 100 << 20;
/// Default for `--max-connections` (whole broker).
pub const CONNECTIONS_MAX_DEFAULT: u32 = 10_000;
/// Requests read from one connection before its responses are written:
/// the reader stops reading beyond this (Kafka clients pipeline 5).
pub const INFLIGHT_REQUESTS_PER_CONNECTION: usize = 32;
/// Request bytes one connection may have in flight (read, not yet
/// answered); Kafka's queued.max.request.bytes, per connection. Never
/// below the frame limit, so one maximal request always fits.
pub const INFLIGHT_BYTES_PER_CONNECTION: u64 = 256 << 20;
/// Bytes read from a socket per read call.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
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
/// Sendfile jobs queued for those threads.
pub const SENDFILE_QUEUE_CAPACITY: usize = 256;
/// A sendfile job waiting this long for the socket to drain fails.
pub const SENDFILE_STALL_MS_MAX: u64 = 30_000;
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
/// A poisoned partition log is reopened after this long, doubling while it
/// keeps failing, up to the max (each reopen rescans its last segment).
pub const REOPEN_BACKOFF_MS_MIN: u64 = 250;
pub const REOPEN_BACKOFF_MS_MAX: u64 = 5_000;
