//! Zero fill under `flush=batch`: a detached task writes zeros ahead of the
//! appender, so appends overwrite written blocks and an fdatasync needs no
//! journal commit for extent conversion. Zeros never land on data: a write
//! that would enter a fill in flight waits for it.

use super::PartitionLog;
use crate::constants::{ZERO_FILL_AHEAD_BYTES, ZERO_FILL_WRITE_BYTES};
use crate::error::AppendError;
use crate::join::join_all;
use crate::segment::Segment;
use crate::segment_appender::align_up;
use crate::storage::{IoBuf, Storage, StorageFile};
use std::rc::Rc;

impl<S: Storage> PartitionLog<S> {
    /// Waits until no zero fill in flight overlaps a write ending at `end`.
    pub(super) async fn wait_zero_fill(
        &self,
        seg: &Segment<S>,
        end: u64,
    ) -> Result<(), AppendError> {
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
    pub(super) fn zero_fill_ahead(&self, seg: &Rc<Segment<S>>, end: u64, seg_max: u64) {
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
                me.poison("zero fill", &e);
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
        let results = join_all(writes.iter().map(|(p, b)| file.write_at(b.clone(), *p))).await;
        for r in results {
            r?;
        }
        Ok(())
    }
}
