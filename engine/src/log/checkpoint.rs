//! Finalizing a rolled segment (all bytes written, truncated to its logical
//! size, synced, indexes written) and the checkpoint and producer snapshot
//! that it allows: recovery trusts every segment below the checkpoint. Also
//! the leader-epoch file, which write rounds replace when it changed.

use super::PartitionLog;
use crate::error::AppendError;
use crate::layout::{
    encode_checkpoint, write_file, write_file_atomic, CHECKPOINT_FILE, INDEX_SUFFIX,
    LEADER_EPOCH_FILE, SNAPSHOT_FILE, TIME_INDEX_SUFFIX,
};
use crate::segment::Segment;
use crate::storage::{Storage, StorageFile};

impl<S: Storage> PartitionLog<S> {
    /// Seals a rolled segment on disk: truncated to its logical size,
    /// synced, indexes written. Returns the checkpoint it allows.
    pub(super) async fn finalize(
        &self,
        seg: &Segment<S>,
        file: &S::File,
    ) -> Result<(i64, Option<Vec<u8>>), AppendError> {
        {
            let ss = seg.st.borrow();
            assert_eq!(
                ss.written, ss.size,
                "finalizing a segment with unwritten bytes"
            );
        }
        let size = self.write_segment_end(seg, file).await?;
        let mut ss = seg.st.borrow_mut();
        ss.finalized = true;
        ss.dirty = false;
        ss.appender = None;
        ss.allocated = size;
        Ok((ss.next_offset, ss.snapshot.take()))
    }

    /// Makes the segment's file end where its log ends, durably, with its
    /// indexes beside it: waits for the zero fill in flight (no zeros may
    /// land past the truncation), truncates to the logical size,
    /// fdatasyncs, writes both indexes. Returns the size.
    pub(super) async fn write_segment_end(
        &self,
        seg: &Segment<S>,
        file: &S::File,
    ) -> Result<u64, AppendError> {
        let (size, index, time_index) = {
            let ss = seg.st.borrow();
            (ss.size, ss.index.encode(), ss.time_index.encode())
        };
        self.wait_zero_fill(seg, u64::MAX).await?;
        file.truncate(size).await?;
        file.fdatasync().await?;
        write_file(&self.storage, &seg.path(INDEX_SUFFIX), &index).await?;
        write_file(&self.storage, &seg.path(TIME_INDEX_SUFFIX), &time_index).await?;
        Ok(size)
    }

    pub(super) async fn write_checkpoint(
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

    /// Replaces the leader-epoch file; only write rounds call it, one at a
    /// time.
    pub(super) async fn write_epochs(&self, bytes: &[u8]) -> Result<(), AppendError> {
        let path = self.dir.join(LEADER_EPOCH_FILE);
        write_file_atomic(&self.storage, &self.dir, &path, bytes).await?;
        Ok(())
    }
}
