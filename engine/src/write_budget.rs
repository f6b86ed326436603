//! The write-behind budget of one shard: bytes appended to any of its logs
//! and not yet handed to the disk. Each log keeps to its own bound
//! (WRITE_BEHIND_BYTES_MAX); this one caps the sum, which would otherwise
//! grow with the number of partitions a shard owns.
//!
//! Under flush=interval and flush=never, an append that leaves the shard
//! over budget waits until its own log's full buffers are written. A log
//! never waits for another log's bytes, so nothing can deadlock, and the
//! bound is soft by at most one partial buffer plus one append call per
//! active log. Under flush=batch appends wait for their fdatasync anyway;
//! the bytes are counted all the same.

use std::cell::Cell;
use std::rc::Rc;

#[derive(Debug)]
pub struct WriteBudget {
    bytes_max: u64,
    used: Cell<u64>,
    used_peak: Cell<u64>,
}

impl WriteBudget {
    pub fn new(bytes_max: u64) -> Rc<WriteBudget> {
        Rc::new(WriteBudget {
            bytes_max,
            used: Cell::new(0),
            used_peak: Cell::new(0),
        })
    }

    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }

    /// Bytes appended to the shard's logs and not yet handed to a write.
    pub fn used_bytes(&self) -> u64 {
        self.used.get()
    }

    /// The most `used_bytes` has been since the budget was made.
    pub fn used_bytes_peak(&self) -> u64 {
        self.used_peak.get()
    }

    pub(crate) fn over(&self) -> bool {
        self.used.get() > self.bytes_max
    }

    /// A log that held `old` unwritten bytes now holds `new`.
    pub(crate) fn adjust(&self, old: u64, new: u64) {
        let used = self.used.get() - old.min(self.used.get()) + new;
        self.used.set(used);
        self.used_peak.set(self.used_peak.get().max(used));
    }
}
