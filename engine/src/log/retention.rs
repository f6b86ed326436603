//! Retention: whole finalized segments deleted from the front, never the
//! active one.

use super::PartitionLog;
use crate::error::AppendError;
use crate::layout::{INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use crate::segment::{Segment, SegmentState};
use crate::storage::Storage;
use std::rc::Rc;

impl<S: Storage> PartitionLog<S> {
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
                // The next write round (or close) writes the file; until
                // then recovery moves the entries up itself.
                let start = st.log_start_offset;
                if st.epochs.truncate_from_start(start) {
                    st.epochs_version += 1;
                }
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
}
