//! The leader-epoch cache, Kafka's `LeaderEpochFileCache`: for each leader
//! epoch of a partition, the offset of its first batch. Followers truncate
//! by it (OffsetForLeaderEpoch, KIP-101 and KIP-279). Pure: the log keeps
//! it beside its other state and persists it as `layout.rs` says
//! ([`crate::layout::encode_leader_epochs`]).
//!
//! Entries rise strictly in both epoch and start offset. An entry that
//! would break that (a leader epoch older than one already recorded, or
//! one starting before the latest) removes the entries it conflicts with,
//! as Kafka's `assign` does, so the order holds whatever the input.

/// An epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Kafka's answer for an epoch that no entry covers (UNDEFINED_EPOCH and
/// UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_EPOCH_END: (i32, i64) = (-1, -1);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache of `entries`, if they rise strictly in epoch and start
    /// offset and none is negative.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Option<LeaderEpochCache> {
        let ok = entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0)
            && entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        ok.then_some(LeaderEpochCache { entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Nothing changes if it
    /// is the latest epoch already, starting at or before that offset.
    /// Entries it conflicts with (an epoch at or above it, or a start at or
    /// after `start_offset`) are removed first. Returns whether anything
    /// changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "invalid leader epoch entry ({epoch}, {start_offset})"
        );
        if self
            .latest()
            .is_some_and(|l| l.epoch == epoch && l.start_offset <= start_offset)
        {
            return false;
        }
        let keep = self
            .entries
            .iter()
            .rposition(|e| e.epoch < epoch && e.start_offset < start_offset)
            .map_or(0, |i| i + 1);
        let removed = self.entries.split_off(keep);
        // Removing the entry of an epoch that wrote nothing (it starts
        // where the new one does) is routine; anything else is not.
        if removed.len() > 1
            || removed
                .first()
                .is_some_and(|r| r.start_offset != start_offset)
        {
            tracing::warn!(
                epoch,
                start_offset,
                ?removed,
                "leader epoch entry removes conflicting entries"
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.assert_ordered();
        true
    }

    /// As recovery rebuilds the cache from the batches it scans (Kafka's
    /// `LogLoader`): a batch's epoch is recorded if it is newer than every
    /// entry. Negative epochs (batches written before any leader stamped
    /// them) are ignored.
    pub fn observe_batch(&mut self, epoch: i32, base_offset: i64) -> bool {
        let newer = self.latest_epoch().is_none_or(|l| epoch > l);
        epoch >= 0 && base_offset >= 0 && newer && self.assign(epoch, base_offset)
    }

    /// The epoch of the batch at `offset`: that of the last entry starting
    /// at or before it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Kafka's OffsetForLeaderEpoch answer: the largest epoch at or below
    /// `epoch`, and where it ends (the start of the next epoch, or
    /// `log_end_offset` for the latest). For an epoch below every entry,
    /// Kafka answers the epoch asked and the start of the first entry (its
    /// history before that is gone); for an epoch above every entry, or an
    /// empty cache, [`UNDEFINED_EPOCH_END`].
    pub fn end_offset_for_epoch(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if epoch < 0 {
            return UNDEFINED_EPOCH_END;
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED_EPOCH_END;
        };
        match higher.checked_sub(1) {
            None => (epoch, next.start_offset),
            Some(i) => (self.entries[i].epoch, next.start_offset),
        }
    }

    /// The log now ends at `end_offset`: entries starting at or after it
    /// go. Returns whether anything changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start_offset`: entries starting before it go,
    /// except the last of them, which moves up to start there (its epoch
    /// wrote the batch at `start_offset`). Returns whether anything changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let before = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(last) = before.checked_sub(1) else {
            return false;
        };
        let changed = last > 0 || self.entries[last].start_offset != start_offset;
        self.entries.drain(..last);
        self.entries[0].start_offset = start_offset;
        self.assert_ordered();
        changed
    }

    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    fn assert_ordered(&self) {
        if let [.., a, b] = self.entries[..] {
            assert!(
                a.epoch < b.epoch && a.start_offset < b.start_offset,
                "leader epochs out of order: {a:?} then {b:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(
            entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
        .expect("ordered entries")
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_appends_newer_epochs_and_ignores_the_current_one() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "same epoch, later offset: no change");
        assert!(c.assign(2, 10));
        assert_eq!(pairs(&c), [(0, 0), (2, 10)]);
        assert_eq!(c.latest_epoch(), Some(2));
    }

    #[test]
    fn assign_removes_conflicting_entries() {
        // A leader epoch that wrote nothing is replaced by the next one.
        let mut c = cache(&[(0, 0), (1, 10)]);
        assert!(c.assign(2, 10));
        assert_eq!(pairs(&c), [(0, 0), (2, 10)]);
        // An older epoch than the latest removes every entry at or above it.
        let mut c = cache(&[(0, 0), (3, 10), (5, 20)]);
        assert!(c.assign(4, 30));
        assert_eq!(pairs(&c), [(0, 0), (3, 10), (4, 30)]);
        // A start before the latest's removes the entries starting after.
        let mut c = cache(&[(0, 0), (3, 10), (5, 20)]);
        assert!(c.assign(6, 15));
        assert_eq!(pairs(&c), [(0, 0), (3, 10), (6, 15)]);
    }

    #[test]
    fn recovery_observes_only_newer_epochs() {
        let mut c = LeaderEpochCache::default();
        assert!(!c.observe_batch(-1, 0), "unstamped batches are ignored");
        assert!(c.observe_batch(1, 0));
        assert!(!c.observe_batch(1, 4));
        assert!(!c.observe_batch(0, 8), "an older epoch is not recorded");
        assert!(c.observe_batch(3, 8));
        assert_eq!(pairs(&c), [(1, 0), (3, 8)]);
    }

    #[test]
    fn epoch_for_offset_takes_the_entry_at_or_before() {
        let c = cache(&[(1, 5), (3, 10), (4, 20)]);
        assert_eq!(c.epoch_for_offset(0), None);
        assert_eq!(c.epoch_for_offset(5), Some(1));
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(3));
        assert_eq!(c.epoch_for_offset(1_000), Some(4));
    }

    #[test]
    fn end_offset_for_epoch_answers_as_kafka() {
        let c = cache(&[(1, 5), (3, 10), (4, 20)]);
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for_epoch(4, 27), (4, 27));
        // An epoch with a successor ends where it starts.
        assert_eq!(c.end_offset_for_epoch(3, 27), (3, 20));
        assert_eq!(c.end_offset_for_epoch(1, 27), (1, 10));
        // KIP-279: an epoch this log never had is answered with the
        // largest one below it and that one's end.
        assert_eq!(c.end_offset_for_epoch(2, 27), (1, 10));
        // Below the first entry: the epoch asked, ending where the first
        // known epoch starts (Kafka's LeaderEpochFileCache.endOffsetFor).
        assert_eq!(c.end_offset_for_epoch(0, 27), (0, 5));
        // Above every entry, undefined epoch, empty cache: undefined.
        assert_eq!(c.end_offset_for_epoch(9, 27), UNDEFINED_EPOCH_END);
        assert_eq!(c.end_offset_for_epoch(-1, 27), UNDEFINED_EPOCH_END);
        assert_eq!(
            LeaderEpochCache::default().end_offset_for_epoch(0, 27),
            UNDEFINED_EPOCH_END
        );
    }

    #[test]
    fn truncation_from_the_end_drops_entries_at_or_after() {
        let mut c = cache(&[(1, 5), (3, 10), (4, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), [(1, 5), (3, 10)]);
        assert!(c.truncate_from_end(7));
        assert_eq!(pairs(&c), [(1, 5)]);
        assert!(c.truncate_from_end(0));
        assert!(c.is_empty());
    }

    #[test]
    fn truncation_from_the_start_moves_the_first_entry_up() {
        let mut c = cache(&[(1, 5), (3, 10), (4, 20)]);
        assert!(!c.truncate_from_start(3), "before the first entry");
        assert!(!c.truncate_from_start(5));
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), [(3, 12), (4, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(pairs(&c), [(4, 20)]);
        assert!(c.truncate_from_start(50));
        assert_eq!(pairs(&c), [(4, 50)]);
    }

    #[test]
    fn unordered_entries_are_refused() {
        let e = |epoch, start_offset| EpochEntry {
            epoch,
            start_offset,
        };
        assert!(LeaderEpochCache::from_entries(vec![e(1, 0), e(1, 5)]).is_none());
        assert!(LeaderEpochCache::from_entries(vec![e(1, 5), e(2, 5)]).is_none());
        assert!(LeaderEpochCache::from_entries(vec![e(2, 0), e(1, 5)]).is_none());
        assert!(LeaderEpochCache::from_entries(vec![e(-1, 0)]).is_none());
        assert!(LeaderEpochCache::from_entries(vec![]).is_some());
    }
}
