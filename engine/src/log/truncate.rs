//! A follower's truncation (its log diverged from its leader's) and reset
//! (its leader's log starts past its end). Both are done by a reopen: the
//! log is closed, the request is recorded in the partition directory, and
//! the next open carries it out (`recovery.rs`), redoing it after a crash
//! at any step until it is done. So a truncation ends in the old log or
//! the truncated one, never in a mix, and the indexes, the producer state
//! and the epoch cache after it are rebuilt by the code that rebuilds them
//! after a crash.

use super::PartitionLog;
use crate::error::RecoveryError;
use crate::layout::{encode_truncation, write_file_atomic, Truncation, PENDING_TRUNCATION_FILE};
use crate::storage::Storage;
use std::io;
use std::path::Path;
use std::rc::Rc;

/// Records `t` for the log in `dir`, which must be closed: its next open
/// carries it out before it takes any append. Durable when this returns.
pub async fn record_truncation<S: Storage>(
    storage: &S,
    dir: &Path,
    t: Truncation,
) -> io::Result<()> {
    let path = dir.join(PENDING_TRUNCATION_FILE);
    write_file_atomic(storage, dir, &path, &encode_truncation(t)).await
}

impl<S: Storage> PartitionLog<S> {
    /// Removes the batch holding `offset` and every later one (Kafka's
    /// truncateTo: the new log end is that batch's base offset; if the log
    /// starts after `offset`, everything goes and it starts again there),
    /// and the epochs starting at or after the new end. Returns the log to
    /// use from now on; this one is closed unless nothing was to be
    /// removed but epochs. The log is a follower afterwards (it stamps no
    /// epoch). On an error this log is closed and the partition directory
    /// holds the old log or the truncated one, or a truncation that the
    /// next open carries out.
    pub async fn truncate_to(&self, offset: i64) -> Result<Rc<Self>, RecoveryError> {
        assert!(offset >= 0, "truncation to offset {offset}");
        if offset >= self.log_end_offset() {
            if let Some(me) = self.truncate_epochs_in_place(offset).await {
                return Ok(me);
            }
        }
        self.reopen_with(Truncation::To(offset)).await
    }

    /// Removes everything; the log starts again, empty, at `offset`, with
    /// no producer state and no epochs (Kafka's truncateFullyAndStartAt).
    /// Returns the reopened log; errors as [`PartitionLog::truncate_to`].
    pub async fn reset_to(&self, offset: i64) -> Result<Rc<Self>, RecoveryError> {
        assert!(offset >= 0, "reset to offset {offset}");
        self.reopen_with(Truncation::Reset(offset)).await
    }

    /// Kafka's truncateTo at or past the log end removes only epochs:
    /// done in place, durably. `None` if the log cannot (closed, or
    /// poisoned, before or by the write): a reopen does it then.
    async fn truncate_epochs_in_place(&self, offset: i64) -> Option<Rc<Self>> {
        let version = {
            let mut st = self.st.borrow_mut();
            if st.closing || st.poisoned || offset < st.next_offset {
                return None;
            }
            st.stamp_epoch = None;
            if st.epochs.truncate_from_end(offset) {
                st.epochs_version += 1;
            }
            st.epochs_version
        };
        self.wait_round(true, true, |st| st.epochs_durable >= version)
            .await
            .ok()?;
        self.me.upgrade()
    }

    /// Closes this log, records `t` and opens the directory again, which
    /// carries it out.
    async fn reopen_with(&self, t: Truncation) -> Result<Rc<Self>, RecoveryError> {
        // A poisoned log does not close cleanly, and one closed already
        // says so; either way no I/O of it is in flight any more, and
        // recovery takes the directory as it finds it.
        if let Err(e) = self.close().await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing before a truncation failed");
        }
        // Another task's close may still be under way: the request must
        // not race its writes.
        loop {
            let wait = self.writer_signal.wait();
            if self.st.borrow().closed {
                break;
            }
            wait.await;
        }
        record_truncation(&self.storage, &self.dir, t)
            .await
            .map_err(RecoveryError::io(&self.dir))?;
        let log = Self::open_with(
            self.storage.clone(),
            self.dir.clone(),
            self.config(),
            self.cache.clone(),
        )
        .await?;
        if let Some(budget) = self.budget.borrow().clone() {
            log.set_write_budget(budget);
        }
        Ok(log)
    }
}
