//! Idempotent-producer state: per producer id, the epoch and the last
//! [`PRODUCER_BATCHES_KEPT`] batches (sequences and offsets), so a retried
//! batch is recognised and answered with its original offsets.

use crate::batch::BatchHeader;
use crate::constants::{PRODUCERS_MAX, PRODUCER_BATCHES_KEPT};
use crate::error::AppendError;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// Offset of the producer's last batch, for forgetting the idlest.
    pub last_offset: i64,
}

/// What the state says about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not idempotent, or the next batch in sequence.
    Accept,
    /// A retry of a batch already in the log.
    Duplicate(BatchMeta),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

impl ProducerState {
    pub fn check(&self, h: &BatchHeader) -> Result<SeqCheck, AppendError> {
        if !h.is_idempotent() {
            return Ok(SeqCheck::Accept);
        }
        let Some(e) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state was removed with old
            // segments): accept any sequence, as Kafka does.
            return Ok(SeqCheck::Accept);
        };
        if h.producer_epoch < e.epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                current: e.epoch,
                got: h.producer_epoch,
            });
        }
        if h.producer_epoch > e.epoch {
            if h.base_sequence != 0 {
                return Err(AppendError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                });
            }
            return Ok(SeqCheck::Accept);
        }
        let last_seq = h.last_sequence();
        if let Some(m) = e
            .batches
            .iter()
            .find(|m| m.first_seq == h.base_sequence && m.last_seq == last_seq)
        {
            return Ok(SeqCheck::Duplicate(*m));
        }
        let expected = e
            .batches
            .back()
            .map(|m| next_seq(m.last_seq))
            .unwrap_or(h.base_sequence);
        if h.base_sequence != expected {
            return Err(AppendError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            });
        }
        Ok(SeqCheck::Accept)
    }

    /// Records an appended batch (its header carries the assigned offset).
    pub fn record(&mut self, h: &BatchHeader) {
        if !h.is_idempotent() {
            return;
        }
        if !self.producers.contains_key(&h.producer_id) && self.producers.len() >= PRODUCERS_MAX {
            self.forget_idlest();
        }
        let e = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if e.batches.len() == PRODUCER_BATCHES_KEPT {
            e.batches.pop_front();
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        e.last_offset = h.last_offset();
    }

    fn forget_idlest(&mut self) {
        if let Some((&pid, _)) = self.producers.iter().min_by_key(|(_, e)| e.last_offset) {
            self.producers.remove(&pid);
        }
    }

    /// Forgets batches at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|m| m.base_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// A copy holding only the given producers (checking a multi-batch
    /// append without touching the real state).
    pub fn subset(&self, pids: impl Iterator<Item = i64>) -> ProducerState {
        let mut out = ProducerState::default();
        for pid in pids {
            if let Some(e) = self.producers.get(&pid) {
                out.producers.insert(pid, e.clone());
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Every producer's entry, by producer id (for the snapshot).
    pub(crate) fn producers(&self) -> &HashMap<i64, ProducerEntry> {
        &self.producers
    }

    pub(crate) fn from_producers(producers: HashMap<i64, ProducerEntry>) -> ProducerState {
        ProducerState { producers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_test_batch_idempotent, BatchHeader};
    use crate::layout::{decode_producer_snapshot, encode_producer_snapshot};

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base: i64) -> BatchHeader {
        let mut b = build_test_batch_idempotent(count, 0, b"", pid, epoch, seq);
        crate::batch::set_base_offset(&mut b, base);
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut s = ProducerState::default();
        let a = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&a).unwrap(), SeqCheck::Accept);
        s.record(&a);
        let b = header(7, 0, 3, 2, 3);
        assert_eq!(s.check(&b).unwrap(), SeqCheck::Accept);
        s.record(&b);
        match s.check(&header(7, 0, 0, 3, 99)).unwrap() {
            SeqCheck::Duplicate(m) => assert_eq!((m.base_offset, m.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.check(&header(7, 0, 9, 1, 5)),
            Err(AppendError::OutOfOrderSequence { expected: 5, .. })
        ));
        let c = header(7, 1, 0, 1, 5);
        assert_eq!(s.check(&c).unwrap(), SeqCheck::Accept);
        s.record(&c);
        assert!(matches!(
            s.check(&header(7, 0, 5, 1, 6)),
            Err(AppendError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            s.check(&header(7, 2, 3, 1, 6)),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        let (off, back) = decode_producer_snapshot(&encode_producer_snapshot(&s, 6)).unwrap();
        assert_eq!(off, 6);
        assert_eq!(back, s);
        let mut bad = encode_producer_snapshot(&s, 6);
        bad[3] ^= 1;
        assert!(decode_producer_snapshot(&bad).is_none());
    }

    #[test]
    fn keeps_only_the_last_five() {
        let mut s = ProducerState::default();
        for i in 0..8 {
            s.record(&header(1, 0, i, 1, i as i64));
        }
        assert!(matches!(
            s.check(&header(1, 0, 0, 1, 0)),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            s.check(&header(1, 0, 3, 1, 0)).unwrap(),
            SeqCheck::Duplicate(_)
        ));
    }
}
