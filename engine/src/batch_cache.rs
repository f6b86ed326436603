//! The bounded per-shard cache of recent batches, serving tail reads
//! without touching the disk. Entries are `Bytes` slices of the buffers the
//! batches arrived in, so a hit hands out the same memory (no copy).
//! Eviction is first-in first-out across all logs of the shard: tail readers
//! want the newest data.

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
}

#[derive(Debug)]
struct Entry {
    last_offset: i64,
    data: Bytes,
}

#[derive(Debug, Default)]
struct CacheState {
    logs: HashMap<u64, BTreeMap<i64, Entry>>,
    fifo: VecDeque<(u64, i64)>,
    entries: usize,
    stats: CacheStats,
}

/// One per shard, shared by its logs.
#[derive(Debug)]
pub struct BatchCache {
    bytes_max: u64,
    state: RefCell<CacheState>,
}

impl BatchCache {
    pub fn new(bytes_max: u64) -> Rc<BatchCache> {
        Rc::new(BatchCache {
            bytes_max,
            state: RefCell::default(),
        })
    }

    pub fn stats(&self) -> CacheStats {
        self.state.borrow().stats
    }

    /// Adds a batch; evicts the oldest entries to stay within the bound.
    pub(crate) fn insert(&self, log: u64, base_offset: i64, last_offset: i64, data: Bytes) {
        let len = data.len() as u64;
        if len > self.bytes_max {
            return;
        }
        let mut st = self.state.borrow_mut();
        while st.stats.bytes + len > self.bytes_max {
            let Some((l, b)) = st.fifo.pop_front() else {
                break;
            };
            let removed = st.logs.get_mut(&l).and_then(|m| m.remove(&b));
            if let Some(e) = removed {
                st.stats.bytes -= e.data.len() as u64;
                st.entries -= 1;
            }
        }
        let old = st
            .logs
            .entry(log)
            .or_default()
            .insert(base_offset, Entry { last_offset, data });
        match old {
            Some(old) => st.stats.bytes -= old.data.len() as u64,
            None => st.entries += 1,
        }
        st.fifo.push_back((log, base_offset));
        st.stats.bytes += len;
        // Truncations leave stale names in the FIFO; keep it bounded.
        if st.fifo.len() > 1024 && st.fifo.len() > 2 * st.entries {
            let CacheState { logs, fifo, .. } = &mut *st;
            fifo.retain(|(l, b)| logs.get(l).is_some_and(|m| m.contains_key(b)));
        }
    }

    /// Whole contiguous batches from the one containing `offset`, below
    /// `end_offset`, within `max_bytes` (at least one). `None` on a miss.
    pub(crate) fn read(
        &self,
        log: u64,
        offset: i64,
        end_offset: i64,
        max_bytes: u32,
    ) -> Option<Vec<Bytes>> {
        let mut st = self.state.borrow_mut();
        let found = st.logs.get(&log).and_then(|m| {
            let (&start, first) = m.range(..=offset).next_back()?;
            if first.last_offset < offset || first.last_offset >= end_offset {
                return None;
            }
            let mut out = Vec::new();
            let mut total = 0u64;
            let mut next = None;
            for (&base, e) in m.range(start..) {
                if next.is_some_and(|n| n != base) || e.last_offset >= end_offset {
                    break;
                }
                total += e.data.len() as u64;
                if !out.is_empty() && total > max_bytes as u64 {
                    break;
                }
                out.push(e.data.clone());
                next = Some(e.last_offset + 1);
            }
            Some(out)
        });
        if found.is_some() {
            st.stats.hits += 1;
        } else {
            st.stats.misses += 1;
        }
        found
    }

    /// Forgets a log's batches below `offset` (retention).
    pub(crate) fn remove_below(&self, log: u64, offset: i64) {
        let mut st = self.state.borrow_mut();
        let (mut freed, mut count) = (0, 0);
        if let Some(m) = st.logs.get_mut(&log) {
            let keep = m.split_off(&offset);
            for (_, e) in std::mem::replace(m, keep) {
                freed += e.data.len() as u64;
                count += 1;
            }
        }
        st.stats.bytes -= freed;
        st.entries -= count;
    }

    /// Forgets a log entirely (close, delete).
    pub(crate) fn remove_log(&self, log: u64) {
        let mut st = self.state.borrow_mut();
        if let Some(m) = st.logs.remove(&log) {
            let freed: u64 = m.values().map(|e| e.data.len() as u64).sum();
            st.stats.bytes -= freed;
            st.entries -= m.len();
        }
        st.fifo.retain(|(l, _)| *l != log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_contiguous_batches_and_evicts_oldest() {
        let c = BatchCache::new(300);
        c.insert(1, 0, 9, Bytes::from(vec![0u8; 100]));
        c.insert(1, 10, 19, Bytes::from(vec![1u8; 100]));
        c.insert(1, 20, 29, Bytes::from(vec![2u8; 100]));
        let r = c.read(1, 5, 30, 1000).unwrap();
        assert_eq!(r.len(), 3);
        let r = c.read(1, 15, 20, 1000).unwrap();
        assert_eq!(r.len(), 1, "stops at the end offset");
        let r = c.read(1, 0, 30, 150).unwrap();
        assert_eq!(r.len(), 1, "budget, but at least one");
        c.insert(1, 30, 39, Bytes::from(vec![3u8; 100]));
        assert!(c.read(1, 0, 40, 1000).is_none(), "oldest evicted");
        assert_eq!(c.stats().bytes, 300);
        c.remove_below(1, 30);
        assert_eq!(c.stats().bytes, 100);
        c.remove_log(1);
        assert_eq!(c.stats().bytes, 0);
        assert!(c.stats().hits >= 3 && c.stats().misses >= 1);
    }
}
