//! Clean close (everything flushed, the active segment's indexes, the
//! checkpoint and snapshot at the log end, then the clean-shutdown marker)
//! and delete.

use super::PartitionLog;
use crate::error::AppendError;
use crate::layout::{
    encode_producer_snapshot, write_file, CLEAN_SHUTDOWN_FILE, CLEAN_SHUTDOWN_MARKER,
};
use crate::storage::Storage;

impl<S: Storage> PartitionLog<S> {
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
        self.end_signal.notify();
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
            let file = seg.st.borrow().file.clone();
            if let Some(file) = file {
                self.write_segment_end(&seg, &file).await?;
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
