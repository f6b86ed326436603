//! Spindle's storage engine: partition logs in Kafka's on-disk layout,
//! written through direct I/O.
//!
//! A [`PartitionLog`] lives on one glommio executor (shard) and is shared
//! by that shard's tasks as `Rc<PartitionLog>`. File I/O goes through the
//! [`storage`] seam: [`DmaStorage`] in production, [`storage::SimStorage`]
//! for crash and fault tests. Replication's side of a log (leader epochs,
//! a follower's appends, truncation) is in `log/replication.rs` and
//! `log/truncate.rs`. See `engine/README.md` for the module map, the
//! replication API and what is durable when.

pub mod batch;
pub mod batch_cache;
pub mod config;
pub mod constants;
pub mod error;
mod join;
mod layout;
pub mod leader_epoch;
mod log;
pub mod producer_state;
mod recovery;
mod segment;
mod segment_appender;
pub mod segment_index;
mod signal;
pub mod storage;
pub mod write_budget;

pub use batch::BatchHeader;
pub use batch_cache::{BatchCache, CacheStats};
pub use config::{FlushMode, LogConfig, ParseFlushModeError};
pub use error::{AppendError, ReadError, RecoveryError};
pub use layout::Truncation;
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use log::{record_truncation, AppendInfo, FileRange, PartitionLog, ReadChunk, ReadResult};
pub use storage::{DmaStorage, Storage};
pub use write_budget::WriteBudget;
