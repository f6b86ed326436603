//! Appends: every batch of a call is validated and its producer sequence
//! checked before any offset is assigned; offsets are assigned and the bytes
//! copied into the active segment's appender before the first await, so
//! offsets follow call order. Segments roll here, by size, age or offset
//! span.

use super::{LogState, PartitionLog};
use crate::batch::{set_base_offset, set_partition_leader_epoch, validate_batches, BatchHeader};
use crate::config::FlushMode;
use crate::constants::{BATCH_BYTES_MAX, REACTOR_YIELD};
use crate::error::AppendError;
use crate::layout::encode_producer_snapshot;
use crate::producer_state::{ProducerState, SeqCheck};
use crate::segment::{now_ms, Segment};
use crate::segment_appender::SegmentAppender;
use crate::storage::Storage;
use bytes::BytesMut;
use std::future::{poll_fn, Future};
use std::rc::Rc;

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

impl<S: Storage> PartitionLog<S> {
    /// Appends one or more concatenated batches; see the crate docs for the
    /// contract. Offsets are assigned before the first await. After
    /// [`PartitionLog::become_leader`] every batch also carries that
    /// leader epoch.
    pub async fn append(&self, mut batches: BytesMut) -> Result<AppendInfo, AppendError> {
        let (target, info, filled) = self.append_sync(&mut batches)?;
        self.acknowledge(target, filled).await?;
        Ok(info)
    }

    /// Returns when an append whose batches end before `target` may be
    /// acknowledged under the flush mode; `filled` says whether it filled
    /// a write buffer.
    pub(super) async fn acknowledge(&self, target: i64, filled: bool) -> Result<(), AppendError> {
        let batch_mode = self.st.borrow().cfg.flush == FlushMode::Batch;
        if batch_mode {
            return self.sync_to(target).await;
        }
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
        Ok(())
    }

    /// Assigns offsets and copies into the appender; also says whether a
    /// write buffer was filled.
    fn append_sync(&self, batches: &mut BytesMut) -> Result<(i64, AppendInfo, bool), AppendError> {
        let mut st = self.st.borrow_mut();
        let mut parsed = Self::validate(&st, batches)?;
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
        let stamp = st.stamp_epoch;
        for (pos, h) in &mut parsed {
            let b = &mut batches[*pos..];
            set_base_offset(b, next);
            h.base_offset = next;
            // The leader's one store per batch: outside the CRC, like the
            // base offset.
            if let Some(epoch) = stamp {
                set_partition_leader_epoch(b, epoch);
                h.partition_leader_epoch = epoch;
            }
            next = h.last_offset() + 1;
        }
        let filled = self.copy_in(&mut st, batches, parsed);
        let info = AppendInfo {
            base_offset: base,
            last_offset: next - 1,
            log_start_offset: st.log_start_offset,
            duplicate: false,
        };
        self.publish(st);
        Ok((next, info, filled))
    }

    /// The checks every append runs first: the log takes appends, and the
    /// batches are whole and valid. Nothing is written if they fail.
    pub(super) fn validate(
        st: &LogState<S>,
        batches: &[u8],
    ) -> Result<Vec<(usize, BatchHeader)>, AppendError> {
        if st.closing {
            return Err(AppendError::Closed);
        }
        if st.poisoned {
            return Err(AppendError::Poisoned);
        }
        validate_batches(batches, BATCH_BYTES_MAX.min(st.cfg.segment_bytes_max))
    }

    /// Copies validated batches, their offsets already in place and in
    /// `parsed`, into the active segment (rolling as needed), the indexes,
    /// the producer state and the cache, and moves the log end past them.
    /// Returns whether a write buffer was filled.
    pub(super) fn copy_in(
        &self,
        st: &mut LogState<S>,
        batches: &mut BytesMut,
        parsed: Vec<(usize, BatchHeader)>,
    ) -> bool {
        let bytes = std::mem::take(batches).freeze();
        let now = now_ms();
        let interval = st.cfg.index_interval_bytes;
        let mut next = st.next_offset;
        let mut filled = false;
        for (pos, h) in parsed {
            debug_assert_eq!(h.base_offset, next, "batches are copied in offset order");
            let len = h.total_len();
            let slice = bytes.slice(pos..pos + len as usize);
            let seg = self.active_segment(st, next, len, now);
            {
                let mut ss = seg.st.borrow_mut();
                let at = ss.size;
                let storage = &self.storage;
                // `active_segment` returns a segment with an appender (it
                // rolls otherwise): offsets, index and cache must never
                // advance over bytes that were not copied.
                let Some(app) = ss.appender.as_mut() else {
                    unreachable!(
                        "appending to {} without an appender",
                        seg.log_path.display()
                    );
                };
                let before = app.buffers_filled();
                app.append(&slice, &mut |n| storage.alloc_buf(n));
                filled |= app.buffers_filled() != before;
                ss.on_batch(seg.base_offset, &h, at, interval);
            }
            st.producers.record(&h);
            self.cache.insert(self.id, next, h.last_offset(), slice);
            next = h.last_offset() + 1;
        }
        assert!(next > st.next_offset, "offsets only grow");
        st.next_offset = next;
        self.account(st);
        filled
    }

    /// After a copy: wakes followers waiting for the log end to grow and,
    /// in the modes that acknowledge before the disk, moves the high
    /// watermark to the log end.
    pub(super) fn publish(&self, mut st: std::cell::RefMut<'_, LogState<S>>) {
        if cfg!(debug_assertions) {
            Self::check_invariants(&st);
        }
        let next = st.next_offset;
        let visible = st.cfg.flush != FlushMode::Batch;
        if visible {
            assert!(next >= st.high_watermark, "the high watermark only grows");
            st.high_watermark = next;
        }
        drop(st);
        self.end_signal.notify();
        if visible {
            self.hw_signal.notify();
        }
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
