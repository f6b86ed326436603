//! `PartitionLog`: one partition's log on one shard. Appends assign offsets
//! synchronously and copy into the active segment's appender; a single
//! writer task per log at a time (a "write round") writes buffers, finalizes
//! rolled segments and fdatasyncs; appenders under `flush=batch` wait for
//! the round whose fdatasync covers them (group commit). Rounds run as
//! detached tasks so that a caller giving up never leaves I/O half done.
//!
//! One job per file, all of them `impl PartitionLog` blocks over the state
//! defined here:
//! - `append.rs`: validation, offsets, the copy into the appender, rolls;
//! - `write_round.rs`: write rounds, group commit, the writes in flight;
//! - `write_behind.rs`: `flush=interval` and `flush=never`: writes started
//!   behind the appender, the shard's write budget, the interval flusher;
//! - `zero_fill.rs`: zeros written ahead of the appender under `flush=batch`;
//! - `checkpoint.rs`: finalizing a rolled segment, then the checkpoint and
//!   producer snapshot it allows;
//! - `read.rs`: fetches and timestamp lookups;
//! - `retention.rs`: deleting whole segments from the front;
//! - `replication.rs`: leader epochs (stamping, the epoch cache and its
//!   queries) and a follower's appends;
//! - `truncate.rs`: a follower's truncation and reset, done by a reopen;
//! - `close.rs`: clean close and delete.

mod append;
mod checkpoint;
mod close;
mod read;
mod replication;
mod retention;
mod truncate;
mod write_behind;
mod write_round;
mod zero_fill;

pub use append::AppendInfo;
pub use read::{FileRange, ReadChunk, ReadResult};
pub use truncate::record_truncation;

use crate::batch_cache::BatchCache;
use crate::config::{FlushMode, LogConfig};
use crate::error::RecoveryError;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::ProducerState;
use crate::recovery;
use crate::segment::Segment;
use crate::signal::Signal;
use crate::storage::{DmaStorage, Storage};
use crate::write_budget::WriteBudget;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct LogState<S: Storage> {
    pub cfg: LogConfig,
    /// Ordered by base offset; the last is the active segment.
    pub segments: Vec<Rc<Segment<S>>>,
    pub log_start_offset: i64,
    /// The next offset to assign (the log end offset).
    pub next_offset: i64,
    /// Offsets below this are on disk and fdatasynced.
    pub durable_offset: i64,
    /// Offsets below this are visible to readers.
    pub high_watermark: i64,
    /// The high watermark when the log last switched to `flush=batch`: a
    /// mode that acknowledges before the disk may have shown readers
    /// offsets that are not durable yet, and the watermark never moves
    /// back.
    pub hw_at_batch_switch: i64,
    pub poisoned: bool,
    /// The I/O error that poisoned the log, for the operator.
    pub poison_cause: Option<String>,
    pub closing: bool,
    pub closed: bool,
    pub writer_busy: bool,
    pub flusher_running: bool,
    pub producers: ProducerState,
    pub epochs: LeaderEpochCache,
    /// Bumped by every change of `epochs`; `epochs_durable` is the version
    /// last written to the epoch file (a write round writes it first).
    pub epochs_version: u64,
    pub epochs_durable: u64,
    /// The leader epoch `append` writes into every batch, from
    /// `become_leader` on.
    pub stamp_epoch: Option<i32>,
}

/// One partition's log. `!Send`: it lives on the shard that owns the
/// partition, shared between that shard's tasks as `Rc<PartitionLog>`.
pub struct PartitionLog<S: Storage = DmaStorage> {
    storage: S,
    dir: PathBuf,
    id: u64,
    cache: Rc<BatchCache>,
    /// The shard's write-behind budget, if the log was given one.
    budget: RefCell<Option<Rc<WriteBudget>>>,
    /// Unwritten bytes of this log last counted in `budget`.
    budget_held: Cell<u64>,
    /// When a slow write-round step was last logged.
    slow_logged: Cell<Option<std::time::Instant>>,
    me: Weak<PartitionLog<S>>,
    st: RefCell<LogState<S>>,
    hw_signal: Rc<Signal>,
    /// Notified when the log end offset grows (before the data is durable).
    end_signal: Rc<Signal>,
    writer_signal: Rc<Signal>,
    fill_signal: Rc<Signal>,
}

impl PartitionLog<DmaStorage> {
    /// Opens (creating if absent) the partition directory `dir`, running
    /// recovery unless it was closed cleanly. Must run on a glommio executor.
    pub async fn open(
        dir: PathBuf,
        cfg: LogConfig,
        cache: Rc<BatchCache>,
    ) -> Result<Rc<PartitionLog>, RecoveryError> {
        PartitionLog::open_with(DmaStorage, dir, cfg, cache).await
    }
}

impl<S: Storage> PartitionLog<S> {
    /// [`PartitionLog::open`] over any storage (tests use the simulated disk).
    pub async fn open_with(
        storage: S,
        dir: PathBuf,
        cfg: LogConfig,
        cache: Rc<BatchCache>,
    ) -> Result<Rc<Self>, RecoveryError> {
        let rec = recovery::recover(&storage, &dir, &cfg).await?;
        let next = rec.next_offset;
        let log = Rc::new_cyclic(|me| PartitionLog {
            storage,
            dir,
            id: NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed),
            cache,
            budget: RefCell::new(None),
            budget_held: Cell::new(0),
            slow_logged: Cell::new(None),
            me: me.clone(),
            st: RefCell::new(LogState {
                cfg,
                segments: rec.segments,
                log_start_offset: rec.log_start_offset,
                next_offset: next,
                durable_offset: next,
                high_watermark: next,
                hw_at_batch_switch: next,
                poisoned: false,
                poison_cause: None,
                closing: false,
                closed: false,
                writer_busy: false,
                flusher_running: false,
                producers: rec.producers,
                epochs: rec.epochs,
                epochs_version: 0,
                epochs_durable: 0,
                stamp_epoch: None,
            }),
            hw_signal: Rc::default(),
            end_signal: Rc::default(),
            writer_signal: Rc::default(),
            fill_signal: Rc::default(),
        });
        log.maybe_start_flusher();
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        self.st.borrow().log_start_offset
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.st.borrow().next_offset
    }

    /// The next offset readers can see: durable under `flush=batch`,
    /// appended otherwise.
    pub fn high_watermark(&self) -> i64 {
        self.st.borrow().high_watermark
    }

    /// Offsets below this are on disk and fdatasynced: what a follower
    /// reports as its fetch offset under `flush=batch`.
    pub fn durable_offset(&self) -> i64 {
        self.st.borrow().durable_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.st
            .borrow()
            .segments
            .iter()
            .map(|s| s.st.borrow().size)
            .sum()
    }

    pub fn segment_count(&self) -> usize {
        self.st.borrow().segments.len()
    }

    pub fn is_poisoned(&self) -> bool {
        self.st.borrow().poisoned
    }

    /// The error that poisoned the log, if it is poisoned.
    pub fn poison_cause(&self) -> Option<String> {
        let st = self.st.borrow();
        st.poisoned
            .then(|| st.poison_cause.clone().unwrap_or_default())
    }

    pub fn config(&self) -> LogConfig {
        self.st.borrow().cfg.clone()
    }

    /// Resolves the next time the high watermark advances, or the log closes
    /// or is poisoned.
    pub fn wait_for_data(&self) -> impl Future<Output = ()> {
        self.hw_signal.wait()
    }

    /// Resolves the next time the log end offset grows (at the append,
    /// before any fdatasync: for followers' fetches, which may read up to
    /// the log end), or the log closes or is poisoned.
    pub fn wait_for_append(&self) -> impl Future<Output = ()> {
        self.end_signal.wait()
    }

    pub fn set_config(&self, cfg: LogConfig) {
        let mut st = self.st.borrow_mut();
        let batch = cfg.flush == FlushMode::Batch;
        if batch && st.cfg.flush != FlushMode::Batch {
            st.hw_at_batch_switch = st.high_watermark;
        }
        st.cfg = cfg;
        if !batch && st.high_watermark < st.next_offset {
            st.high_watermark = st.next_offset;
            drop(st);
            self.hw_signal.notify();
        } else {
            drop(st);
        }
        self.maybe_start_flusher();
    }

    /// The log's invariants, checked after every append and write round in
    /// debug builds, so that the seeded simulations stop at the step that
    /// broke one. Costs O(segments not yet finalized).
    fn check_invariants(st: &LogState<S>) {
        let (hw, durable, next) = (st.high_watermark, st.durable_offset, st.next_offset);
        assert!(durable <= next, "durable {durable} > log end {next}");
        assert!(hw <= next, "high watermark {hw} > log end {next}");
        // Under flush=batch readers see only durable offsets (beyond what
        // an earlier mode showed them); the other modes show what is
        // appended.
        if st.cfg.flush == FlushMode::Batch {
            let limit = durable.max(st.hw_at_batch_switch);
            assert!(hw <= limit, "high watermark {hw} > durable {durable}");
        }
        assert!(st.log_start_offset <= next);
        // Epoch entries lie within the log: they start no later than its
        // end (a leader's new epoch starts at the end) and no earlier
        // than its start.
        if let (Some(first), Some(last)) = (st.epochs.entries().first(), st.epochs.latest()) {
            assert!(
                last.start_offset <= next,
                "epoch {last:?} past log end {next}"
            );
            assert!(
                first.start_offset >= st.log_start_offset,
                "epoch {first:?} before log start {}",
                st.log_start_offset
            );
        }
        assert!(st.epochs_durable <= st.epochs_version);
        if let Some(first) = st.segments.first() {
            assert_eq!(first.base_offset, st.log_start_offset);
        }
        if let Some(last) = st.segments.last() {
            let ls = last.st.borrow();
            assert_eq!(ls.next_offset, next, "the active segment ends the log");
            assert!(
                !ls.sealed && ls.appender.is_some(),
                "the active segment takes appends"
            );
        }
        for seg in st.segments.iter().rev() {
            let ss = seg.st.borrow();
            if ss.finalized {
                assert!(ss.sealed && ss.appender.is_none() && ss.written == ss.size);
                break;
            }
            let Some(app) = ss.appender.as_ref() else {
                panic!(
                    "{} is not finalized but has no appender",
                    seg.log_path.display()
                );
            };
            assert_eq!(
                app.logical_end(),
                ss.size,
                "the appender holds the segment's bytes"
            );
            assert!(
                ss.written <= ss.size,
                "written {} > size {}",
                ss.written,
                ss.size
            );
            assert!(ss.zero_target == 0 || ss.zero_target > ss.zero_end);
        }
    }

    /// After a failed write, fsync or zero fill (`what`): appends, flushes
    /// and retention fail with `Poisoned` until the log is reopened, so no
    /// ack covers data that may not be on disk. Logged once per log.
    fn poison(&self, what: &str, e: &dyn std::fmt::Display) {
        let mut st = self.st.borrow_mut();
        if !st.poisoned {
            tracing::error!(dir = %self.dir.display(), error = %e, "{what} failed; log poisoned until reopened");
            st.poison_cause = Some(e.to_string());
        }
        st.poisoned = true;
        drop(st);
        self.hw_signal.notify();
        self.end_signal.notify();
    }
}

impl<S: Storage> Drop for PartitionLog<S> {
    fn drop(&mut self) {
        self.release_budget();
        self.cache.remove_log(self.id);
    }
}
