//! What partition replication asks of a log: a leader stamps its epoch on
//! every batch it appends and records where each epoch starts (the
//! leader-epoch cache, Kafka's `leader-epoch-checkpoint`); a follower
//! appends the leader's batches byte for byte and learns the epochs from
//! them; both answer OffsetForLeaderEpoch from the cache.

use super::{AppendInfo, LogState, PartitionLog};
use crate::error::AppendError;
use crate::storage::Storage;
use bytes::BytesMut;

impl<S: Storage> PartitionLog<S> {
    /// This replica leads the partition in `epoch` (from the controller):
    /// every batch `append` takes from now on carries `epoch`, and the
    /// epoch starts at the log end offset in the epoch cache, durably
    /// before this returns. Leadership lasts until the log is reopened
    /// (truncation, repair, restart): the broker calls this again then.
    ///
    /// An epoch below the cache's latest (which a controller never hands
    /// out) removes the entries it conflicts with, as Kafka does.
    pub async fn become_leader(&self, epoch: i32) -> Result<(), AppendError> {
        assert!(epoch >= 0, "leader epoch {epoch} is negative");
        let version = {
            let mut st = self.st.borrow_mut();
            if st.closing {
                return Err(AppendError::Closed);
            }
            if st.poisoned {
                return Err(AppendError::Poisoned);
            }
            st.stamp_epoch = Some(epoch);
            let end = st.next_offset;
            if st.epochs.assign(epoch, end) {
                st.epochs_version += 1;
            }
            st.epochs_version
        };
        self.wait_round(true, true, |st| st.epochs_durable >= version)
            .await
    }

    /// The epoch `append` stamps, if this replica was made leader.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.st.borrow().stamp_epoch
    }

    /// The latest epoch in the epoch cache (the one a follower asks its
    /// leader about in OffsetForLeaderEpoch).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.st.borrow().epochs.latest_epoch()
    }

    /// The leader epoch of the batch at `offset`, by the epoch cache.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.st.borrow().epochs.epoch_for_offset(offset)
    }

    /// The OffsetForLeaderEpoch answer: the largest epoch at or below
    /// `epoch` and its end offset (see
    /// [`LeaderEpochCache::end_offset_for_epoch`](crate::LeaderEpochCache::end_offset_for_epoch));
    /// `(-1, -1)` when there is none.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let st = self.st.borrow();
        st.epochs.end_offset_for_epoch(epoch, st.next_offset)
    }

    /// The epoch cache's entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<crate::EpochEntry> {
        self.st.borrow().epochs.entries().to_vec()
    }

    /// A follower's append: `batches` as its leader sent them, offsets and
    /// epochs set. They are checked as `append` checks them (a bad batch is
    /// an error and nothing is written), must start at the log end offset
    /// and follow each other without a gap
    /// ([`AppendError::OffsetMismatch`]), and are appended unchanged. A
    /// batch of a newer leader epoch starts that epoch in the cache. The
    /// producer state learns every batch and refuses none: the leader
    /// decided. Durable as `append` is: under `flush=batch` it returns
    /// once the batches and their epochs are fdatasynced.
    pub async fn append_replicated(
        &self,
        mut batches: BytesMut,
    ) -> Result<AppendInfo, AppendError> {
        let (target, info, filled) = self.replicate_sync(&mut batches)?;
        self.acknowledge(target, filled).await?;
        Ok(info)
    }

    fn replicate_sync(
        &self,
        batches: &mut BytesMut,
    ) -> Result<(i64, AppendInfo, bool), AppendError> {
        let mut st = self.st.borrow_mut();
        let parsed = Self::validate(&st, batches)?;
        let base = st.next_offset;
        let mut expected = base;
        for (_, h) in &parsed {
            if h.base_offset != expected {
                return Err(AppendError::OffsetMismatch {
                    expected,
                    got: h.base_offset,
                });
            }
            expected = h.last_offset() + 1;
        }
        for (_, h) in &parsed {
            learn_epoch(&mut st, h.partition_leader_epoch, h.base_offset);
        }
        let filled = self.copy_in(&mut st, batches, parsed);
        let info = AppendInfo {
            base_offset: base,
            last_offset: expected - 1,
            log_start_offset: st.log_start_offset,
            duplicate: false,
        };
        self.publish(st);
        Ok((expected, info, filled))
    }
}

/// A replicated batch of `epoch` at `base_offset`: a new epoch starts
/// there (Kafka's `maybeAssignEpochStartOffset`). Batches no leader stamped
/// (negative epochs, written before replication) say nothing.
fn learn_epoch<S: Storage>(st: &mut LogState<S>, epoch: i32, base_offset: i64) {
    if epoch >= 0 && st.epochs.assign(epoch, base_offset) {
        st.epochs_version += 1;
    }
}
