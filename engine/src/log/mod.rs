//! `PartitionLog`: one partition's log on one shard. Appends assign offsets
//! synchronously and copy into the active segment's appender; a single
//! writer task per log at a time (a "write round") writes buffers, finalizes
//! rolled segments and fdatasyncs; appenders under `flush=batch` wait for
//! the round whose fdatasync covers them (group commit). Rounds run as
//! detached tasks so that a caller giving up never leaves I/O half done.

use crate::batch::{set_base_offset, validate_batches, BatchHeader};
use crate::batch_cache::BatchCache;
use crate::config::{FlushMode, LogConfig};
use crate::constants::{
    BATCH_BYTES_MAX, PREALLOC_STEP_BYTES, REACTOR_YIELD, READ_SCAN_WINDOW_BYTES,
    SLOW_IO_LOG_INTERVAL_MS, SLOW_IO_MS, WRITE_BEHIND_BYTES_MAX, WRITE_QUEUE_DEPTH,
    WRITE_ROUND_OPS_MAX, ZERO_FILL_AHEAD_BYTES, ZERO_FILL_ROUND_BYTES_MAX, ZERO_FILL_WRITE_BYTES,
};
use crate::error::{AppendError, ReadError, RecoveryError};
use crate::layout::{
    encode_checkpoint, encode_producer_snapshot, write_file, write_file_atomic, CHECKPOINT_FILE,
    CLEAN_SHUTDOWN_FILE, CLEAN_SHUTDOWN_MARKER, INDEX_SUFFIX, SNAPSHOT_FILE, TIME_INDEX_SUFFIX,
};
use crate::producer_state::{ProducerState, SeqCheck};
use crate::recovery;
use crate::segment::{now_ms, ScanEnd, Scanner, Segment, SegmentState};
use crate::segment_appender::{align_up, write_buf_bytes, SegmentAppender, WriteOp};
use crate::signal::Signal;
use crate::storage::{DmaStorage, IoBuf, Storage, StorageFile};
use crate::write_budget::WriteBudget;
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

/// Result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already in the log; offsets are the
    /// original ones.
    pub duplicate: bool,
}

/// Cold data: a range of a segment file to send with sendfile.
#[derive(Debug, Clone)]
pub struct FileRange {
    /// Opened O_RDONLY, buffered (reads go through the page cache).
    pub file: Arc<std::fs::File>,
    pub position: u64,
    pub len: u32,
}

#[derive(Debug, Clone)]
pub enum ReadChunk {
    /// From the tail cache or memory: send as is.
    Memory(Bytes),
    /// From a segment file.
    File(FileRange),
}

impl ReadChunk {
    pub fn len(&self) -> u64 {
        match self {
            ReadChunk::Memory(b) => b.len() as u64,
            ReadChunk::File(r) => r.len as u64,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches in offset order; empty at the high watermark.
    pub chunks: Vec<ReadChunk>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

pub(crate) struct LogState<S: Storage> {
    pub cfg: LogConfig,
    /// Ordered by base offset; the last is the active segment.
    pub segments: Vec<Rc<Segment<S>>>,
    pub log_start_offset: i64,
    pub next_offset: i64,
    pub durable_offset: i64,
    pub high_watermark: i64,
    pub poisoned: bool,
    /// The I/O error that poisoned the log, for the operator.
    pub poison_cause: Option<String>,
    pub closing: bool,
    pub closed: bool,
    pub writer_busy: bool,
    pub flusher_running: bool,
    pub producers: ProducerState,
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
    writer_signal: Rc<Signal>,
    fill_signal: Rc<Signal>,
}

struct Job<S: Storage> {
    seg: Rc<Segment<S>>,
    ops: Vec<WriteOp<S::Buf>>,
    finalize: bool,
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
                poisoned: false,
                poison_cause: None,
                closing: false,
                closed: false,
                writer_busy: false,
                flusher_running: false,
                producers: rec.producers,
            }),
            hw_signal: Rc::default(),
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

    /// Logs an I/O step of a write round that took longer than
    /// SLOW_IO_MS (at most once per SLOW_IO_LOG_INTERVAL_MS per log):
    /// every append waiting for the round waits that long, so these set
    /// the tail latency of acks.
    fn note_slow(&self, what: &str, started: std::time::Instant) {
        let took = started.elapsed();
        if took < std::time::Duration::from_millis(SLOW_IO_MS) {
            return;
        }
        let now = std::time::Instant::now();
        let due = self.slow_logged.get().is_none_or(|t| {
            now.duration_since(t) >= std::time::Duration::from_millis(SLOW_IO_LOG_INTERVAL_MS)
        });
        if due {
            self.slow_logged.set(Some(now));
            tracing::warn!(dir = %self.dir.display(), step = what, ms = took.as_millis() as u64, "slow write round step");
        }
    }

    /// Counts this log's unwritten bytes in the shard's `budget` from now
    /// on, and makes its appends wait when the shard is over it.
    pub fn set_write_budget(&self, budget: Rc<WriteBudget>) {
        let held = self.budget_held.replace(0);
        if let Some(old) = self.budget.replace(Some(budget)) {
            old.adjust(held, 0);
        }
        self.account(&self.st.borrow());
    }

    /// Brings the budget's count of this log's unwritten bytes up to date.
    fn account(&self, st: &LogState<S>) {
        if let Some(b) = self.budget.borrow().as_ref() {
            let now = unwritten_bytes(st);
            b.adjust(self.budget_held.replace(now), now);
        }
    }

    fn release_budget(&self) {
        if let Some(b) = self.budget.borrow().as_ref() {
            b.adjust(self.budget_held.replace(0), 0);
        }
    }

    /// Done waiting for write-behind: this log is within its own bound,
    /// and either the shard is within its budget or this log has no full
    /// buffer left to write (it waits for its own bytes only).
    fn write_behind_done(&self, st: &LogState<S>) -> bool {
        let mine = unwritten_bytes(st);
        let shard_ok = || {
            mine < write_buf_bytes(&st.cfg) as u64
                || self.budget.borrow().as_ref().is_none_or(|b| !b.over())
        };
        mine <= WRITE_BEHIND_BYTES_MAX && shard_ok()
    }

    /// Resolves the next time the high watermark advances, or the log closes
    /// or is poisoned.
    pub fn wait_for_data(&self) -> impl Future<Output = ()> {
        self.hw_signal.wait()
    }

    pub fn set_config(&self, cfg: LogConfig) {
        let mut st = self.st.borrow_mut();
        let batch = cfg.flush == FlushMode::Batch;
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

    /// Appends one or more concatenated batches; see the crate docs for the
    /// contract. Offsets are assigned before the first await.
    pub async fn append(&self, mut batches: BytesMut) -> Result<AppendInfo, AppendError> {
        let (target, info, filled) = self.append_sync(&mut batches)?;
        let batch_mode = self.st.borrow().cfg.flush == FlushMode::Batch;
        if batch_mode {
            self.sync_to(target).await?;
        } else {
            // Write behind: start writing full buffers at once so the device
            // stays busy; wait only past the bound.
            self.write_behind();
            self.wait_round(false, false, |st| self.write_behind_done(st))
                .await?;
            // A buffer this append filled is written only once the writer
            // task has taken it and the reactor has submitted it, and glommio
            // polls its rings only when no task is runnable (or its 100 ms
            // preemption timer fires). An appender that never awaits anything
            // else (a tight loop, a busy shard) would fill the whole
            // write-behind bound with the device idle: step off the CPU until
            // the next reactor poll, once per buffer filled.
            if filled {
                yield_to_reactor().await;
            }
        }
        Ok(info)
    }

    /// Assigns offsets and copies into the appender; also says whether a
    /// write buffer was filled.
    fn append_sync(&self, batches: &mut BytesMut) -> Result<(i64, AppendInfo, bool), AppendError> {
        let mut st = self.st.borrow_mut();
        if st.closing {
            return Err(AppendError::Closed);
        }
        if st.poisoned {
            return Err(AppendError::Poisoned);
        }
        let parsed = validate_batches(batches, BATCH_BYTES_MAX.min(st.cfg.segment_bytes_max))?;
        if let Some((base_offset, last_offset)) =
            check_producers(&st.producers, &parsed, st.next_offset)?
        {
            let info = AppendInfo {
                base_offset,
                last_offset,
                log_start_offset: st.log_start_offset,
                duplicate: true,
            };
            return Ok((last_offset + 1, info, false));
        }
        let base = st.next_offset;
        let mut next = base;
        for (pos, h) in &parsed {
            set_base_offset(&mut batches[*pos..], next);
            next += h.last_offset_delta as i64 + 1;
        }
        let bytes = std::mem::take(batches).freeze();
        let now = now_ms();
        let interval = st.cfg.index_interval_bytes;
        let mut next = base;
        let mut filled = false;
        for (pos, h) in parsed {
            let h = BatchHeader {
                base_offset: next,
                ..h
            };
            let len = h.total_len();
            let slice = bytes.slice(pos..pos + len as usize);
            let seg = self.active_segment(&mut st, next, len, now);
            {
                let mut ss = seg.st.borrow_mut();
                let at = ss.size;
                let storage = &self.storage;
                if let Some(app) = ss.appender.as_mut() {
                    let before = app.buffers_filled();
                    app.append(&slice, &mut |n| storage.alloc_buf(n));
                    filled |= app.buffers_filled() != before;
                }
                ss.on_batch(seg.base_offset, &h, at, interval);
            }
            st.producers.record(&h);
            self.cache.insert(self.id, next, h.last_offset(), slice);
            next = h.last_offset() + 1;
        }
        st.next_offset = next;
        self.account(&st);
        let info = AppendInfo {
            base_offset: base,
            last_offset: next - 1,
            log_start_offset: st.log_start_offset,
            duplicate: false,
        };
        if st.cfg.flush != FlushMode::Batch {
            st.high_watermark = next;
            drop(st);
            self.hw_signal.notify();
        }
        Ok((next, info, filled))
    }

    /// The segment the batch at `offset` of `len` bytes goes to, rolling
    /// by size or age.
    fn active_segment(
        &self,
        st: &mut LogState<S>,
        offset: i64,
        len: u64,
        now: i64,
    ) -> Rc<Segment<S>> {
        if let Some(seg) = st.segments.last() {
            let ss = seg.st.borrow();
            let full = ss.size > 0
                && (ss.size + len > st.cfg.segment_bytes_max
                    || st
                        .cfg
                        .segment_ms_max
                        .is_some_and(|ms| now - ss.created_ms >= ms as i64)
                    || offset - seg.base_offset > (u32::MAX / 2) as i64);
            if !full && !ss.sealed && ss.appender.is_some() {
                return seg.clone();
            }
            drop(ss);
            let mut ss = seg.st.borrow_mut();
            if !ss.sealed {
                ss.sealed = true;
                ss.snapshot = Some(encode_producer_snapshot(&st.producers, offset));
            }
        }
        let seg = Rc::new(Segment::new(&self.dir, offset, now));
        seg.st.borrow_mut().appender = Some(SegmentAppender::for_log(&st.cfg, 0, Vec::new()));
        st.segments.push(seg.clone());
        seg
    }

    /// Makes everything appended so far durable.
    pub async fn flush(&self) -> Result<(), AppendError> {
        let target = self.st.borrow().next_offset;
        self.sync_to(target).await
    }

    async fn sync_to(&self, target: i64) -> Result<(), AppendError> {
        self.wait_round(true, true, |st| st.durable_offset >= target)
            .await
    }

    /// Waits until `done` holds, starting write rounds as needed.
    async fn wait_round(
        &self,
        sync: bool,
        partial: bool,
        done: impl Fn(&LogState<S>) -> bool,
    ) -> Result<(), AppendError> {
        loop {
            let (wait, start) = {
                let st = self.st.borrow();
                if done(&st) {
                    return Ok(());
                }
                if st.poisoned {
                    return Err(AppendError::Poisoned);
                }
                (self.writer_signal.wait(), !st.writer_busy)
            };
            if start {
                self.start_round(sync, partial);
            }
            wait.await;
        }
    }

    /// Starts a round writing full buffers if the writer is idle and there
    /// are any (non-batch modes).
    fn write_behind(&self) {
        let start = {
            let st = self.st.borrow();
            !st.writer_busy
                && !st.poisoned
                && st.cfg.flush != FlushMode::Batch
                && unwritten_bytes(&st) >= write_buf_bytes(&st.cfg) as u64
        };
        if start {
            self.start_round(false, false);
        }
    }

    /// Starts a write round as a detached task; no borrow may be held (the
    /// executor may run the task at once).
    fn start_round(&self, sync: bool, partial: bool) {
        let Some(me) = self.me.upgrade() else { return };
        self.st.borrow_mut().writer_busy = true;
        glommio::spawn_local(async move {
            // The executor may run this task at once: let tasks woken with
            // it (appenders of the last round) add their batches first, so
            // that one fdatasync covers them all.
            futures_lite::future::yield_now().await;
            let r = me.write_round(sync, partial).await;
            let mut st = me.st.borrow_mut();
            st.writer_busy = false;
            if let Err(e) = r {
                if !st.poisoned {
                    tracing::error!(dir = %me.dir.display(), error = %e, "write failed; log poisoned until reopened");
                    st.poison_cause = Some(e.to_string());
                }
                st.poisoned = true;
                drop(st);
                me.hw_signal.notify();
            } else {
                drop(st);
            }
            me.writer_signal.notify();
            // Keep the device busy while appenders fill buffers.
            me.write_behind();
        })
        .detach();
    }

    /// One write round: writes what the appenders hold (with `partial`,
    /// their partial buffers too), finalizes sealed segments in order, and
    /// with `sync` fdatasyncs every file written since its last sync.
    async fn write_round(&self, sync: bool, partial: bool) -> Result<(), AppendError> {
        let (jobs, target, seg_max) = {
            let st = self.st.borrow();
            let mut jobs = Vec::new();
            for seg in &st.segments {
                let mut ss = seg.st.borrow_mut();
                let finalize = ss.sealed && !ss.finalized;
                let Some(app) = ss.appender.as_mut() else {
                    continue;
                };
                let ops = app.take(partial || finalize);
                if ops.is_empty() && !finalize && !(sync && ss.dirty) {
                    continue;
                }
                jobs.push(Job {
                    seg: seg.clone(),
                    ops,
                    finalize,
                });
            }
            self.account(&st);
            (jobs, st.next_offset, st.cfg.segment_bytes_max)
        };
        let mut dir_dirty = false;
        let mut checkpoint = None;
        for job in jobs {
            let existing = job.seg.st.borrow().file.clone();
            let file = match existing {
                Some(f) => f,
                None => {
                    let f = Rc::new(self.storage.open(&job.seg.log_path, true).await?);
                    job.seg.st.borrow_mut().file = Some(f.clone());
                    dir_dirty = true;
                    f
                }
            };
            // Write-behind rounds keep taking full buffers of the active
            // segment as appenders fill them, up to a bound.
            let refill = !sync && !partial && !job.finalize;
            let started = std::time::Instant::now();
            self.write_ops(&job.seg, &file, job.ops, refill, seg_max)
                .await?;
            self.note_slow("writes", started);
            if job.finalize {
                checkpoint = Some(self.finalize(&job.seg, &file).await?);
            } else if sync && job.seg.st.borrow().dirty {
                let started = std::time::Instant::now();
                file.fdatasync().await?;
                self.note_slow("fdatasync", started);
                job.seg.st.borrow_mut().dirty = false;
            }
        }
        if dir_dirty {
            self.storage.sync_dir(&self.dir).await?;
        }
        if let Some((offset, snapshot)) = checkpoint {
            self.write_checkpoint(offset, snapshot.as_deref()).await?;
        }
        if sync {
            let mut st = self.st.borrow_mut();
            st.durable_offset = st.durable_offset.max(target);
            if st.cfg.flush == FlushMode::Batch && st.high_watermark < st.durable_offset {
                st.high_watermark = st.durable_offset;
                drop(st);
                self.hw_signal.notify();
            }
        }
        Ok(())
    }

    /// Writes `ops` in order with up to [`WRITE_QUEUE_DEPTH`] in flight,
    /// advancing the segment's written end as the oldest complete. With
    /// `refill`, full buffers appended meanwhile are taken too (at most
    /// [`WRITE_ROUND_OPS_MAX`] ops, so a round ends and flushes get a turn).
    /// Only full buffers are taken mid-round: they never share a block with
    /// a write in flight.
    async fn write_ops(
        &self,
        seg: &Rc<Segment<S>>,
        file: &S::File,
        ops: Vec<WriteOp<S::Buf>>,
        refill: bool,
        seg_max: u64,
    ) -> Result<(), AppendError> {
        type Slot<F, B> = (WriteOp<B>, Pin<Box<F>>, Option<std::io::Result<usize>>);
        // Zero fill pays off when syncs are small (one journal commit per
        // fdatasync saved); for large ones it would double the bytes written.
        let round_bytes: u64 = ops.iter().map(|op| op.buf.as_slice().len() as u64).sum();
        let zero_fill = self.st.borrow().cfg.flush == FlushMode::Batch
            && round_bytes < ZERO_FILL_ROUND_BYTES_MAX;
        let mut queued: VecDeque<WriteOp<S::Buf>> = ops.into();
        let mut in_flight = VecDeque::new();
        let mut taken = queued.len();
        loop {
            while in_flight.len() < WRITE_QUEUE_DEPTH {
                if queued.is_empty() && refill && taken < WRITE_ROUND_OPS_MAX {
                    let more = seg
                        .st
                        .borrow_mut()
                        .appender
                        .as_mut()
                        .map(|a| a.take(false))
                        .unwrap_or_default();
                    if !more.is_empty() {
                        self.account(&self.st.borrow());
                        // Appenders held at the write-behind bound may go on.
                        self.writer_signal.notify();
                    }
                    taken += more.len();
                    queued.extend(more);
                }
                let Some(op) = queued.pop_front() else { break };
                let end = op.pos + op.buf.as_slice().len() as u64;
                // Whatever this round does, a fill may be in flight.
                self.wait_zero_fill(seg, end).await?;
                let allocated = seg.st.borrow().allocated;
                if end > allocated {
                    let cap = align_up(seg_max).max(end);
                    let new = end
                        .div_ceil(PREALLOC_STEP_BYTES)
                        .saturating_mul(PREALLOC_STEP_BYTES)
                        .min(cap);
                    file.preallocate(new).await?;
                    seg.st.borrow_mut().allocated = new;
                }
                if zero_fill {
                    self.zero_fill_ahead(seg, end, seg_max);
                }
                let fut = Box::pin(file.write_at(op.buf.clone(), op.pos));
                let slot: Slot<_, S::Buf> = (op, fut, None);
                in_flight.push_back(slot);
            }
            if in_flight.is_empty() {
                return Ok(());
            }
            poll_fn(|cx| {
                for (_, fut, res) in in_flight.iter_mut() {
                    if res.is_none() {
                        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                            *res = Some(r);
                        }
                    }
                }
                if in_flight.front().is_some_and(|s| s.2.is_some()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            while in_flight.front().is_some_and(|s| s.2.is_some()) {
                let Some((op, _, Some(res))) = in_flight.pop_front() else {
                    break;
                };
                res?;
                {
                    let mut ss = seg.st.borrow_mut();
                    ss.written = ss.written.max(op.logical_end);
                    ss.dirty = true;
                }
                if let Ok(buf) = Rc::try_unwrap(op.buf) {
                    self.storage.release_buf(buf);
                }
            }
        }
    }

    /// Waits until no zero fill in flight overlaps a write ending at `end`.
    async fn wait_zero_fill(&self, seg: &Segment<S>, end: u64) -> Result<(), AppendError> {
        loop {
            let wait = self.fill_signal.wait();
            {
                let ss = seg.st.borrow();
                if ss.zero_target == 0 || end <= ss.zero_end {
                    return Ok(());
                }
            }
            if self.st.borrow().poisoned {
                return Err(AppendError::Poisoned);
            }
            wait.await;
        }
    }

    /// Keeps the segment zero-filled ahead of a write ending at `end`, in a
    /// detached task. Writes past the filled end wait for the fill in
    /// flight (`wait_zero_fill`), so zeros never land on data.
    fn zero_fill_ahead(&self, seg: &Rc<Segment<S>>, end: u64, seg_max: u64) {
        let (from, to) = {
            let mut ss = seg.st.borrow_mut();
            // A write beyond the filled end (none was in flight) lands in
            // preallocated space; filling restarts after it.
            ss.zero_end = ss.zero_end.max(align_up(end));
            let cap = align_up(seg_max);
            if ss.zero_target != 0
                || ss.zero_end >= cap
                || ss.zero_end >= end + ZERO_FILL_AHEAD_BYTES / 2
            {
                return;
            }
            let to = (ss.zero_end + ZERO_FILL_AHEAD_BYTES).min(cap);
            ss.zero_target = to;
            (ss.zero_end, to)
        };
        let Some(me) = self.me.upgrade() else { return };
        let Some(file) = seg.st.borrow().file.clone() else {
            return;
        };
        let seg = seg.clone();
        glommio::spawn_local(async move {
            let r = me.zero_fill(&file, from, to).await;
            {
                let mut ss = seg.st.borrow_mut();
                ss.zero_target = 0;
                if r.is_ok() {
                    ss.zero_end = ss.zero_end.max(to);
                    ss.allocated = ss.allocated.max(to);
                }
            }
            if let Err(e) = r {
                let mut st = me.st.borrow_mut();
                if !st.poisoned {
                    tracing::error!(dir = %me.dir.display(), error = %e, "zero fill failed; log poisoned until reopened");
                    st.poison_cause = Some(e.to_string());
                }
                st.poisoned = true;
                drop(st);
                me.hw_signal.notify();
                me.writer_signal.notify();
            }
            me.fill_signal.notify();
        })
        .detach();
    }

    async fn zero_fill(&self, file: &S::File, from: u64, to: u64) -> std::io::Result<()> {
        let mut writes = Vec::new();
        let mut bufs: Vec<(u64, Rc<S::Buf>)> = Vec::new();
        let mut pos = from;
        while pos < to {
            let n = ZERO_FILL_WRITE_BYTES.min(to - pos);
            let buf = match bufs.iter().find(|(len, _)| *len == n) {
                Some((_, b)) => b.clone(),
                None => {
                    let mut b = self.storage.alloc_buf(n as usize);
                    b.as_mut_slice().fill(0);
                    let b = Rc::new(b);
                    bufs.push((n, b.clone()));
                    b
                }
            };
            writes.push((pos, buf));
            pos += n;
        }
        let mut futs: Vec<_> = writes
            .iter()
            .map(|(p, b)| (Box::pin(file.write_at(b.clone(), *p)), None))
            .collect();
        poll_fn(|cx| {
            let mut pending = false;
            for (f, r) in futs.iter_mut() {
                if r.is_none() {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(x) => *r = Some(x),
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        for (_, r) in futs {
            if let Some(r) = r {
                r?;
            }
        }
        Ok(())
    }

    /// Seals a rolled segment on disk: truncated to its logical size,
    /// synced, indexes written. Returns the checkpoint it allows.
    async fn finalize(
        &self,
        seg: &Segment<S>,
        file: &S::File,
    ) -> Result<(i64, Option<Vec<u8>>), AppendError> {
        let (size, index, time_index) = {
            let ss = seg.st.borrow();
            assert_eq!(
                ss.written, ss.size,
                "finalizing a segment with unwritten bytes"
            );
            (ss.size, ss.index.encode(), ss.time_index.encode())
        };
        self.wait_zero_fill(seg, u64::MAX).await?;
        file.truncate(size).await?;
        file.fdatasync().await?;
        write_file(&self.storage, &seg.path(INDEX_SUFFIX), &index).await?;
        write_file(&self.storage, &seg.path(TIME_INDEX_SUFFIX), &time_index).await?;
        let mut ss = seg.st.borrow_mut();
        ss.finalized = true;
        ss.dirty = false;
        ss.appender = None;
        ss.allocated = size;
        Ok((ss.next_offset, ss.snapshot.take()))
    }

    async fn write_checkpoint(
        &self,
        offset: i64,
        snapshot: Option<&[u8]>,
    ) -> Result<(), AppendError> {
        if let Some(snap) = snapshot {
            write_file_atomic(
                &self.storage,
                &self.dir,
                &self.dir.join(SNAPSHOT_FILE),
                snap,
            )
            .await?;
        }
        let cp = encode_checkpoint(offset);
        write_file_atomic(
            &self.storage,
            &self.dir,
            &self.dir.join(CHECKPOINT_FILE),
            &cp,
        )
        .await?;
        Ok(())
    }

    fn maybe_start_flusher(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.flusher_running || st.closing || !matches!(st.cfg.flush, FlushMode::Interval(_)) {
                return;
            }
            st.flusher_running = true;
        }
        let weak = self.me.clone();
        glommio::spawn_local(async move {
            loop {
                let interval = {
                    let Some(log) = weak.upgrade() else { break };
                    let mut st = log.st.borrow_mut();
                    match st.cfg.flush {
                        FlushMode::Interval(d) if !st.closing && !st.poisoned => d,
                        _ => {
                            st.flusher_running = false;
                            break;
                        }
                    }
                };
                glommio::timer::sleep(interval).await;
                let Some(log) = weak.upgrade() else { break };
                if log.flush().await.is_err() {
                    log.st.borrow_mut().flusher_running = false;
                    break;
                }
            }
        })
        .detach();
    }

    /// Waits until the segment's appended bytes are all in its file (only
    /// needed when readers may see unflushed data, i.e. not `flush=batch`).
    async fn ensure_written(&self, seg: &Rc<Segment<S>>) -> Result<(), ReadError> {
        {
            // Durable implies written: under flush=batch readers never wait.
            let st = self.st.borrow();
            if st.high_watermark <= st.durable_offset {
                return Ok(());
            }
        }
        let need = seg.st.borrow().size;
        let s = seg.clone();
        self.wait_round(false, true, move |_| s.st.borrow().written >= need)
            .await
            .map_err(|e| match e {
                AppendError::Io(e) => ReadError::Io(e),
                _ => ReadError::Poisoned,
            })
    }

    /// Kafka fetch semantics: whole batches from the one containing
    /// `offset`, up to `max_bytes` but at least one, below the high watermark.
    pub async fn read(&self, offset: i64, max_bytes: u32) -> Result<ReadResult, ReadError> {
        self.read_with(offset, max_bytes, false).await
    }

    /// [`PartitionLog::read`], but cold data is read into memory through
    /// the storage seam (an async read on the shard) instead of being
    /// returned as a file range: for the broker's own readers of internal
    /// topics, which parse what they read.
    pub async fn read_in_memory(
        &self,
        offset: i64,
        max_bytes: u32,
    ) -> Result<ReadResult, ReadError> {
        self.read_with(offset, max_bytes, true).await
    }

    async fn read_with(
        &self,
        offset: i64,
        max_bytes: u32,
        in_memory: bool,
    ) -> Result<ReadResult, ReadError> {
        let (lso, hw, seg) = {
            let st = self.st.borrow();
            if st.closed {
                return Err(ReadError::Closed);
            }
            let seg = st
                .segments
                .iter()
                .rev()
                .find(|s| s.base_offset <= offset)
                .cloned();
            (st.log_start_offset, st.high_watermark, seg)
        };
        if offset < lso || offset > hw {
            return Err(ReadError::OffsetOutOfRange {
                log_start_offset: lso,
                high_watermark: hw,
            });
        }
        let mut rr = ReadResult {
            chunks: Vec::new(),
            high_watermark: hw,
            log_start_offset: lso,
        };
        if offset == hw {
            return Ok(rr);
        }
        if let Some(v) = self.cache.read(self.id, offset, hw, max_bytes) {
            rr.chunks = v.into_iter().map(ReadChunk::Memory).collect();
            return Ok(rr);
        }
        let Some(seg) = seg else {
            return Err(ReadError::OffsetOutOfRange {
                log_start_offset: lso,
                high_watermark: hw,
            });
        };
        self.ensure_written(&seg).await?;
        let (file, start, limit) = {
            let ss = seg.st.borrow();
            let rel = (offset - seg.base_offset).clamp(0, u32::MAX as i64) as u32;
            (
                ss.file.clone(),
                ss.index.lookup(rel) as u64,
                ss.written.min(ss.size),
            )
        };
        let Some(file) = file else { return Ok(rr) };
        let mut sc = Scanner::new(&*file, start, limit, READ_SCAN_WINDOW_BYTES, None);
        let mut range: Option<(u64, u64)> = None;
        loop {
            let (pos, h) = match sc.next(false).await? {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(ScanEnd::Invalid { position, reason }) => {
                    return Err(ReadError::Corrupt {
                        segment: seg.log_path.clone(),
                        position,
                        reason,
                    })
                }
            };
            if h.last_offset() < offset {
                continue;
            }
            if h.last_offset() >= hw {
                break;
            }
            let end = pos + h.total_len();
            match range {
                None => {
                    range = Some((pos, end));
                    // Skip ahead with the index: batches before an indexed
                    // position are whole, so only the last stretch is scanned.
                    let jump = seg
                        .st
                        .borrow()
                        .index
                        .last_at_or_before_position(pos + max_bytes as u64);
                    if let Some((rel, p)) = jump {
                        if p as u64 > end && seg.base_offset + (rel as i64) < hw {
                            range = Some((pos, p as u64));
                            sc.jump(p as u64);
                        }
                    }
                }
                Some((s, _)) if end - s > max_bytes as u64 => break,
                Some((s, _)) => range = Some((s, end)),
            }
        }
        if let Some((s, e)) = range {
            rr.chunks
                .push(self.chunk(&seg, &file, s, e, in_memory).await?);
        }
        Ok(rr)
    }

    async fn chunk(
        &self,
        seg: &Segment<S>,
        file: &S::File,
        start: u64,
        end: u64,
        in_memory: bool,
    ) -> Result<ReadChunk, ReadError> {
        let cached = seg.st.borrow().reader.clone();
        let reader = match cached {
            _ if in_memory => None,
            Some(r) => Some(r),
            None => {
                let r = self.storage.reader(&seg.log_path)?;
                seg.st.borrow_mut().reader = r.clone();
                r
            }
        };
        let len = end - start;
        Ok(match reader {
            Some(file) => ReadChunk::File(FileRange {
                file,
                position: start,
                len: len as u32,
            }),
            None => {
                let b = file.read_at(start, len as usize).await?;
                if b.len() as u64 != len {
                    return Err(ReadError::Corrupt {
                        segment: seg.log_path.clone(),
                        position: start,
                        reason: "short read".into(),
                    });
                }
                ReadChunk::Memory(Bytes::copy_from_slice(&b))
            }
        })
    }

    /// The first batch whose maxTimestamp >= `timestamp_ms`, as (base
    /// offset, max timestamp), below the high watermark.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let (segs, hw) = {
            let st = self.st.borrow();
            if st.closed {
                return Err(ReadError::Closed);
            }
            (st.segments.clone(), st.high_watermark)
        };
        for seg in segs {
            let (max_ts, start) = {
                let ss = seg.st.borrow();
                let start = ss
                    .time_index
                    .lookup(timestamp_ms)
                    .map(|r| ss.index.lookup(r.saturating_add(1)))
                    .unwrap_or(0);
                (ss.max_timestamp, start as u64)
            };
            if seg.base_offset >= hw {
                break;
            }
            if max_ts < timestamp_ms {
                continue;
            }
            self.ensure_written(&seg).await?;
            let (file, limit) = {
                let ss = seg.st.borrow();
                (ss.file.clone(), ss.written.min(ss.size))
            };
            let Some(file) = file else { continue };
            let mut sc = Scanner::new(&*file, start, limit, READ_SCAN_WINDOW_BYTES, None);
            loop {
                let (_, h) = match sc.next(false).await? {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(ScanEnd::Invalid { position, reason }) => {
                        return Err(ReadError::Corrupt {
                            segment: seg.log_path.clone(),
                            position,
                            reason,
                        })
                    }
                };
                if h.last_offset() >= hw {
                    return Ok(None);
                }
                if h.max_timestamp >= timestamp_ms {
                    return Ok(Some((h.base_offset, h.max_timestamp)));
                }
            }
        }
        Ok(None)
    }

    /// Deletes whole sealed segments past `retention.bytes` or
    /// `retention.ms`, oldest first. The active segment is never deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<u32, AppendError> {
        let (by_bytes, by_time, mut total) = {
            let st = self.st.borrow();
            let total: u64 = st.segments.iter().map(|s| s.st.borrow().size).sum();
            (st.cfg.retention_bytes, st.cfg.retention_ms, total)
        };
        self.delete_front(|_, _, ss| {
            let over_bytes = by_bytes.is_some_and(|r| total - ss.size >= r);
            let too_old =
                by_time.is_some_and(|r| ss.max_timestamp < now_ms.saturating_sub(r as i64));
            if over_bytes || too_old {
                total -= ss.size;
            }
            over_bytes || too_old
        })
        .await
    }

    /// Deletes the whole sealed segments that hold only offsets below
    /// `offset`, moving the log start offset up to the first segment left
    /// (which may start below `offset`). For logs whose owner knows that
    /// everything below an offset is superseded (the broker's committed
    /// offsets, after it rewrote their live state past it).
    pub async fn delete_segments_below(&self, offset: i64) -> Result<u32, AppendError> {
        // Segment i ends where segment i + 1 begins.
        self.delete_front(|i, all, _| all.get(i + 1).is_some_and(|n| n.base_offset <= offset))
            .await
    }

    /// Deletes sealed segments from the front while `doomed(i, segments,
    /// state of segment i)` says so, never the active one; `segments` is
    /// the list as it was before any deletion.
    async fn delete_front(
        &self,
        mut doomed: impl FnMut(usize, &[Rc<Segment<S>>], &SegmentState<S>) -> bool,
    ) -> Result<u32, AppendError> {
        let mut victims = Vec::new();
        {
            let mut st = self.st.borrow_mut();
            if st.poisoned {
                return Err(AppendError::Poisoned);
            }
            let all = st.segments.clone();
            while st.segments.len() >= 2 {
                let first = st.segments[0].clone();
                let ss = first.st.borrow();
                if !ss.finalized || !doomed(victims.len(), &all, &ss) {
                    break;
                }
                drop(ss);
                st.segments.remove(0);
                st.log_start_offset = st.segments[0].base_offset;
                victims.push(first);
            }
            if !victims.is_empty() {
                self.cache.remove_below(self.id, st.log_start_offset);
            }
        }
        for seg in &victims {
            for p in [
                seg.log_path.clone(),
                seg.path(INDEX_SUFFIX),
                seg.path(TIME_INDEX_SUFFIX),
            ] {
                match self.storage.remove_file(&p).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            tracing::info!(segment = %seg.log_path.display(), "deleted segment");
        }
        if !victims.is_empty() {
            self.storage.sync_dir(&self.dir).await?;
        }
        Ok(victims.len() as u32)
    }

    /// Flushes everything, seals the active segment's indexes and writes
    /// the clean-shutdown marker. Later appends fail with `Closed`.
    pub async fn close(&self) -> Result<(), AppendError> {
        {
            let mut st = self.st.borrow_mut();
            if st.closing {
                return if st.closed {
                    Ok(())
                } else {
                    Err(AppendError::Closed)
                };
            }
            st.closing = true;
        }
        let r = self.close_inner().await;
        // Even when poisoned: a reopen of this directory must not race a
        // round or a zero fill still writing through the old handles.
        self.drain_io().await;
        self.st.borrow_mut().closed = true;
        self.release_budget();
        self.cache.remove_log(self.id);
        self.hw_signal.notify();
        self.writer_signal.notify();
        r
    }

    /// Waits until no write round and no zero fill is in flight.
    async fn drain_io(&self) {
        loop {
            let writer = self.writer_signal.wait();
            let fill = self.fill_signal.wait();
            {
                let st = self.st.borrow();
                let filling = st.segments.iter().any(|s| s.st.borrow().zero_target != 0);
                if !st.writer_busy && !filling {
                    return;
                }
            }
            futures_lite::future::or(writer, fill).await;
        }
    }

    async fn close_inner(&self) -> Result<(), AppendError> {
        self.flush().await?;
        loop {
            let w = self.writer_signal.wait();
            if !self.st.borrow().writer_busy {
                break;
            }
            w.await;
        }
        let (active, next, snapshot) = {
            let st = self.st.borrow();
            if st.poisoned {
                return Err(AppendError::Poisoned);
            }
            (
                st.segments.last().cloned(),
                st.next_offset,
                encode_producer_snapshot(&st.producers, st.next_offset),
            )
        };
        if let Some(seg) = active {
            let (file, size, index, time_index) = {
                let ss = seg.st.borrow();
                (
                    ss.file.clone(),
                    ss.size,
                    ss.index.encode(),
                    ss.time_index.encode(),
                )
            };
            if let Some(file) = file {
                self.wait_zero_fill(&seg, u64::MAX).await?;
                file.truncate(size).await?;
                file.fdatasync().await?;
                write_file(&self.storage, &seg.path(INDEX_SUFFIX), &index).await?;
                write_file(&self.storage, &seg.path(TIME_INDEX_SUFFIX), &time_index).await?;
            }
        }
        self.write_checkpoint(next, Some(&snapshot)).await?;
        write_file(
            &self.storage,
            &self.dir.join(CLEAN_SHUTDOWN_FILE),
            CLEAN_SHUTDOWN_MARKER,
        )
        .await?;
        self.storage.sync_dir(&self.dir).await?;
        Ok(())
    }

    /// Closes the log and removes its directory (DeleteTopics).
    pub async fn delete(&self) -> Result<(), AppendError> {
        if let Err(e) = self.close().await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing before delete failed");
        }
        self.storage.remove_dir_all(&self.dir).await?;
        Ok(())
    }
}

impl<S: Storage> Drop for PartitionLog<S> {
    fn drop(&mut self) {
        self.release_budget();
        self.cache.remove_log(self.id);
    }
}

/// Returns after the executor's next reactor poll. A timer is woken only by
/// that poll; but one that has already expired when first polled (a slow or
/// preempted thread) is ready at once, so that case takes another.
async fn yield_to_reactor() {
    loop {
        let mut timer = std::pin::pin!(glommio::timer::Timer::new(REACTOR_YIELD));
        let mut waited = false;
        poll_fn(|cx| {
            let r = timer.as_mut().poll(cx).map(|_| ());
            waited |= r.is_pending();
            r
        })
        .await;
        if waited {
            return;
        }
    }
}

fn unwritten_bytes<S: Storage>(st: &LogState<S>) -> u64 {
    st.segments
        .iter()
        .rev()
        .map_while(|s| s.st.borrow().appender.as_ref().map(|a| a.unwritten_bytes()))
        .sum()
}

/// Checks idempotent-producer sequences of a call's batches. Returns the
/// original offsets if the call is a retry of batches already appended.
fn check_producers(
    producers: &ProducerState,
    parsed: &[(usize, BatchHeader)],
    next_offset: i64,
) -> Result<Option<(i64, i64)>, AppendError> {
    if let [(_, h)] = parsed {
        return Ok(match producers.check(h)? {
            SeqCheck::Accept => None,
            SeqCheck::Duplicate(m) => Some((m.base_offset, m.last_offset)),
        });
    }
    if !parsed.iter().any(|(_, h)| h.is_idempotent()) {
        return Ok(None);
    }
    let mut scratch = producers.subset(parsed.iter().map(|(_, h)| h.producer_id));
    let mut next = next_offset;
    let mut dup: Option<(i64, i64)> = None;
    let mut dups = 0;
    for (_, h) in parsed {
        match scratch.check(h)? {
            SeqCheck::Accept => scratch.record(&BatchHeader {
                base_offset: next,
                ..*h
            }),
            SeqCheck::Duplicate(m) => {
                dups += 1;
                dup = Some((dup.map_or(m.base_offset, |d| d.0), m.last_offset));
            }
        }
        next += h.last_offset_delta as i64 + 1;
    }
    match dups {
        0 => Ok(None),
        n if n == parsed.len() => Ok(dup),
        _ => Err(AppendError::InvalidRecord(
            "a call mixes retried and new batches".into(),
        )),
    }
}
