//! The sparse `.index` (relative offset u32, position u32) and `.timeindex`
//! (timestamp i64, relative offset u32) of a segment, in Kafka's big-endian
//! format. Both live in memory for the active segment and are written whole
//! when a segment is sealed or the log closes cleanly.

/// Offset index: entry (rel, pos) says the batch at `pos` ends at offset
/// `base + rel` (Kafka indexes a batch by its last offset).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, rel: u32, pos: u32) {
        if let Some(&(r, p)) = self.entries.last() {
            if rel <= r || pos <= p {
                return;
            }
        }
        self.entries.push((rel, pos));
    }

    /// Position of the last indexed batch ending at or before `base + rel`,
    /// from which a forward scan finds `rel`; 0 when none.
    pub fn lookup(&self, rel: u32) -> u32 {
        let i = self.entries.partition_point(|&(r, _)| r <= rel);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// The last entry whose batch starts at or before `pos`.
    pub fn last_at_or_before_position(&self, pos: u64) -> Option<(u32, u32)> {
        let i = self.entries.partition_point(|&(_, p)| p as u64 <= pos);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops entries at or after `pos` (after a truncation).
    pub fn truncate_to_position(&mut self, pos: u32) {
        self.entries.retain(|&(_, p)| p < pos);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for &(r, p) in &self.entries {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Decodes an index file, checking that it can belong to a segment of
    /// `log_size` bytes; `None` means stale or damaged (rebuild it).
    pub fn decode(bytes: &[u8], log_size: u64) -> Option<OffsetIndex> {
        if bytes.len() % 8 != 0 {
            return None;
        }
        let mut idx = OffsetIndex::default();
        for c in bytes.chunks_exact(8) {
            let r = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let p = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            if let Some(&(lr, lp)) = idx.entries.last() {
                if r <= lr || p <= lp {
                    return None;
                }
            }
            if p as u64 >= log_size {
                return None;
            }
            idx.entries.push((r, p));
        }
        Some(idx)
    }
}

/// Time index: entry (ts, rel) says every batch before offset `base + rel`
/// has maxTimestamp <= ts, and the batch ending at `rel` has ts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn push(&mut self, ts: i64, rel: u32) {
        if let Some(&(t, r)) = self.entries.last() {
            if ts <= t || rel <= r {
                return;
            }
        }
        self.entries.push((ts, rel));
    }

    /// Relative offset of the last entry with timestamp < `ts`: every batch
    /// with maxTimestamp >= `ts` ends after it. `None` means scan from the start.
    pub fn lookup(&self, ts: i64) -> Option<u32> {
        let i = self.entries.partition_point(|&(t, _)| t < ts);
        if i == 0 {
            None
        } else {
            Some(self.entries[i - 1].1)
        }
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    pub fn truncate_to_offset(&mut self, rel_end: u32) {
        self.entries.retain(|&(_, r)| r < rel_end);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for &(t, r) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    /// Decodes a time index whose offsets must stay below `rel_end`.
    pub fn decode(bytes: &[u8], rel_end: u32) -> Option<TimeIndex> {
        if bytes.len() % 12 != 0 {
            return None;
        }
        let mut idx = TimeIndex::default();
        for c in bytes.chunks_exact(12) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&c[..8]);
            let t = i64::from_be_bytes(t);
            let r = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if let Some(&(lt, lr)) = idx.entries.last() {
                if t <= lt || r <= lr {
                    return None;
                }
            }
            if r >= rel_end {
                return None;
            }
            idx.entries.push((t, r));
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lookup_finds_the_floor() {
        let mut i = OffsetIndex::default();
        i.push(9, 100);
        i.push(19, 200);
        assert_eq!(i.lookup(5), 0);
        assert_eq!(i.lookup(9), 100);
        assert_eq!(i.lookup(15), 100);
        assert_eq!(i.lookup(100), 200);
    }

    #[test]
    fn decode_rejects_stale_indexes() {
        let mut i = OffsetIndex::default();
        i.push(9, 100);
        i.push(19, 5000);
        let bytes = i.encode();
        assert_eq!(OffsetIndex::decode(&bytes, 6000), Some(i));
        assert_eq!(OffsetIndex::decode(&bytes, 4000), None);
        assert_eq!(OffsetIndex::decode(&bytes[..7], 6000), None);
    }

    proptest! {
        #[test]
        fn index_round_trips(mut pairs in proptest::collection::vec((0u32..1_000_000, 0u32..1_000_000), 0..50)) {
            pairs.sort();
            let mut i = OffsetIndex::default();
            let mut t = TimeIndex::default();
            for (a, b) in &pairs {
                i.push(*a, *b);
                t.push(*a as i64, *b);
            }
            prop_assert_eq!(OffsetIndex::decode(&i.encode(), u64::MAX), Some(i));
            prop_assert_eq!(TimeIndex::decode(&t.encode(), u32::MAX), Some(t));
        }
    }
}
