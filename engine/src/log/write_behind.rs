//! The modes whose appends do not wait for the disk (`flush=interval`,
//! `flush=never`): full buffers are written behind the appender, an append
//! waits only past the log's write-behind bound or the shard's write
//! budget, and under `flush=interval` a flusher task syncs every interval.

use super::{LogState, PartitionLog};
use crate::config::FlushMode;
use crate::constants::WRITE_BEHIND_BYTES_MAX;
use crate::segment_appender::write_buf_bytes;
use crate::storage::Storage;
use crate::write_budget::WriteBudget;
use std::rc::Rc;

impl<S: Storage> PartitionLog<S> {
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
    pub(super) fn account(&self, st: &LogState<S>) {
        if let Some(b) = self.budget.borrow().as_ref() {
            let now = unwritten_bytes(st);
            b.adjust(self.budget_held.replace(now), now);
        }
    }

    pub(super) fn release_budget(&self) {
        if let Some(b) = self.budget.borrow().as_ref() {
            b.adjust(self.budget_held.replace(0), 0);
        }
    }

    /// Done waiting for write-behind: this log is within its own bound,
    /// and either the shard is within its budget or this log has no full
    /// buffer left to write (it waits for its own bytes only).
    pub(super) fn write_behind_done(&self, st: &LogState<S>) -> bool {
        let mine = unwritten_bytes(st);
        let shard_ok = || {
            mine < write_buf_bytes(&st.cfg) as u64
                || self.budget.borrow().as_ref().is_none_or(|b| !b.over())
        };
        mine <= WRITE_BEHIND_BYTES_MAX && shard_ok()
    }

    /// Starts a round writing full buffers if the writer is idle and there
    /// are any (non-batch modes).
    pub(super) fn write_behind(&self) {
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

    pub(super) fn maybe_start_flusher(&self) {
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
}

fn unwritten_bytes<S: Storage>(st: &LogState<S>) -> u64 {
    st.segments
        .iter()
        .rev()
        .map_while(|s| s.st.borrow().appender.as_ref().map(|a| a.unwritten_bytes()))
        .sum()
}
