//! Write rounds: one at a time per log, as a detached task. A round writes
//! what the appenders hold, finalizes sealed segments in order and, when
//! asked, fdatasyncs every file it wrote; under `flush=batch` every append
//! waits for the first round whose fdatasync started after its bytes were
//! buffered, so concurrent appenders share one fdatasync (group commit).

use super::{LogState, PartitionLog};
use crate::config::FlushMode;
use crate::constants::{
    PREALLOC_STEP_BYTES, SLOW_IO_LOG_INTERVAL_MS, SLOW_IO_MS, WRITE_QUEUE_DEPTH,
    WRITE_ROUND_OPS_MAX, ZERO_FILL_ROUND_BYTES_MAX,
};
use crate::error::AppendError;
use crate::layout::encode_leader_epochs;
use crate::segment::Segment;
use crate::segment_appender::{align_up, WriteOp};
use crate::storage::{IoBuf, Storage, StorageFile};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

/// One segment's share of a write round.
struct Job<S: Storage> {
    seg: Rc<Segment<S>>,
    ops: Vec<WriteOp<S::Buf>>,
    finalize: bool,
}

impl<S: Storage> PartitionLog<S> {
    /// Makes everything appended so far durable.
    pub async fn flush(&self) -> Result<(), AppendError> {
        let target = self.st.borrow().next_offset;
        self.sync_to(target).await
    }

    /// Waits until offsets below `target` are durable, and the epoch file
    /// with them: a batch of a new leader epoch is acknowledged only once
    /// the entry of its epoch is on disk (epochs change rarely, so waiting
    /// for the latest version costs nothing in practice).
    pub(super) async fn sync_to(&self, target: i64) -> Result<(), AppendError> {
        self.wait_round(true, true, |st| {
            st.durable_offset >= target && st.epochs_durable >= st.epochs_version
        })
        .await
    }

    /// Waits until `done` holds, starting write rounds as needed.
    pub(super) async fn wait_round(
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

    /// Starts a write round as a detached task; no borrow may be held (the
    /// executor may run the task at once).
    pub(super) fn start_round(&self, sync: bool, partial: bool) {
        let Some(me) = self.me.upgrade() else { return };
        {
            let mut st = self.st.borrow_mut();
            // One round at a time: its writes never overlap another's.
            assert!(!st.writer_busy, "a write round is already running");
            st.writer_busy = true;
        }
        glommio::spawn_local(async move {
            // The executor may run this task at once: let tasks woken with
            // it (appenders of the last round) add their batches first, so
            // that one fdatasync covers them all.
            futures_lite::future::yield_now().await;
            let r = me.write_round(sync, partial).await;
            me.st.borrow_mut().writer_busy = false;
            if let Err(e) = r {
                me.poison("write", &e);
            }
            if cfg!(debug_assertions) {
                Self::check_invariants(&me.st.borrow());
            }
            me.writer_signal.notify();
            // Keep the device busy while appenders fill buffers.
            me.write_behind();
        })
        .detach();
    }

    /// One write round: writes the epoch file if it changed, then what the
    /// appenders hold (with `partial`, their partial buffers too),
    /// finalizes sealed segments in order, and with `sync` fdatasyncs every
    /// file written since its last sync.
    async fn write_round(&self, sync: bool, partial: bool) -> Result<(), AppendError> {
        let (jobs, target, seg_max, epochs) = {
            let st = self.st.borrow();
            // Taken with the jobs: every batch this round writes had its
            // epoch recorded before, so the file covers it before its data
            // is on disk (recovery trusts it below the checkpoint).
            let epochs = (st.epochs_durable < st.epochs_version)
                .then(|| (st.epochs_version, encode_leader_epochs(&st.epochs)));
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
            (jobs, st.next_offset, st.cfg.segment_bytes_max, epochs)
        };
        if let Some((version, bytes)) = epochs {
            self.write_epochs(&bytes).await?;
            let mut st = self.st.borrow_mut();
            assert!(version > st.epochs_durable, "epoch file versions only grow");
            st.epochs_durable = version;
        }
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
            // Rounds run one at a time and each syncs up to the log end
            // it saw at its start, so the durable offset only grows.
            assert!(
                st.durable_offset <= target && target <= st.next_offset,
                "durable offset {} -> {target}, log end {}",
                st.durable_offset,
                st.next_offset
            );
            st.durable_offset = target;
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
        // End of the last write issued: a round issues its writes in file
        // order, none overlapping the one before, so none in flight overlap
        // (a partial block is rewritten only by a later round).
        let mut issued_end = 0;
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
                assert!(
                    op.pos >= issued_end,
                    "write at {} overlaps one in flight up to {issued_end}",
                    op.pos
                );
                issued_end = end;
                {
                    let ss = seg.st.borrow();
                    assert!(
                        ss.zero_target == 0 || end <= ss.zero_end,
                        "write up to {end} would enter the zero fill from {}",
                        ss.zero_end
                    );
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
                    // Completions are taken in issue order, and issue
                    // order is file order.
                    assert!(
                        op.logical_end >= ss.written,
                        "written end {} -> {}",
                        ss.written,
                        op.logical_end
                    );
                    ss.written = op.logical_end;
                    ss.dirty = true;
                }
                if let Ok(buf) = Rc::try_unwrap(op.buf) {
                    self.storage.release_buf(buf);
                }
            }
        }
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
}
