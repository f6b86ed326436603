//! The follower side of the crash and fault simulations. The log under
//! test is one replica of a partition; the other replica is a model in
//! memory with its own epoch cache. Leadership moves between them: when
//! the log leads it gets `become_leader` and stamps its appends, and the
//! other replica copies some of them; when the other leads, the log
//! truncates as a Kafka follower does (OffsetForLeaderEpoch, KIP-101 and
//! KIP-279), starts again past a deletion of the leader's records, and
//! fetches with `append_replicated`.
//!
//! Checked after every reopen (`verify`): the log holds a prefix of what it
//! held before (plus maybe the call in flight), or with a truncation in
//! flight exactly the log before it or after it; every acknowledged batch
//! not truncated since is there, with its bytes, offsets and epoch; no
//! batch removed by a finished truncation (and not held by the leader)
//! ever comes back; the epoch cache is exactly the epochs of the batches.
//! Checked after every truncation: the log is a prefix of the leader's.

use crate::common::*;
use bytes::BytesMut;
use spindle_engine::batch::{set_base_offset, set_partition_leader_epoch};
use spindle_engine::storage::sim::SimRng;
use spindle_engine::storage::SimStorage;
use spindle_engine::{
    AppendError, BatchHeader, EpochEntry, LeaderEpochCache, PartitionLog, RecoveryError,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

type Log = PartitionLog<SimStorage>;

/// A batch of the other replica's log.
#[derive(Clone)]
pub struct OtherBatch {
    pub base: i64,
    pub last: i64,
    pub epoch: i32,
    pub id: u64,
    pub bytes: Vec<u8>,
}

/// The other replica, in memory.
#[derive(Default)]
pub struct Other {
    pub batches: Vec<OtherBatch>,
    pub start: i64,
    pub epochs: LeaderEpochCache,
}

impl Other {
    pub fn end(&self) -> i64 {
        self.batches.last().map_or(self.start, |b| b.last + 1)
    }

    fn holds(&self, id: u64) -> bool {
        self.batches.iter().any(|b| b.id == id)
    }

    /// Keeps what it shares with the log (`content`, by offset and id).
    fn truncate_to_common(&mut self, content: &[(i64, u64)]) {
        let shared: HashSet<(i64, u64)> = content.iter().copied().collect();
        let keep = self
            .batches
            .iter()
            .take_while(|b| shared.contains(&(b.base, b.id)))
            .count();
        self.batches.truncate(keep);
        let end = self.end();
        self.epochs.truncate_from_end(end);
    }

    fn push(&mut self, b: OtherBatch) {
        assert_eq!(b.base, self.end());
        self.epochs.observe_batch(b.epoch, b.base);
        self.batches.push(b);
    }
}

/// A truncation or reset in flight: the log is one or the other after a
/// crash.
pub struct Pending {
    pub before: (i64, Vec<(i64, u64)>),
    pub after: (i64, Vec<(i64, u64)>),
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub leader_terms: u64,
    pub replicated: u64,
    pub truncations: u64,
    /// Truncations that removed batches.
    pub cuts: u64,
    pub resets: u64,
    /// Reopens that found a truncation or reset in flight.
    pub interrupted: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.leader_terms += o.leader_terms;
        self.replicated += o.replicated;
        self.truncations += o.truncations;
        self.cuts += o.cuts;
        self.resets += o.resets;
        self.interrupted += o.interrupted;
    }
}

#[derive(Default)]
pub struct ReplicaModel {
    pub next_id: u64,
    /// The last leader epoch handed out.
    pub epoch: i32,
    pub other: Other,
    /// Every batch ever appended to the log: offset and bytes as it holds
    /// them.
    pub batches: HashMap<u64, (i64, Vec<u8>)>,
    /// What the log holds: its start and (base, id) of each batch.
    pub start: i64,
    pub content: Vec<(i64, u64)>,
    /// The batches of an append call that did not return.
    pub in_flight: Vec<(i64, u64)>,
    /// Acknowledged and not truncated since.
    pub acked: BTreeMap<i64, u64>,
    pub removed: HashSet<u64>,
    pub pending: Option<Pending>,
    /// A truncation or reset has started (the crash test aims at it).
    pub truncating: bool,
    pub done: bool,
    /// Broken promises seen by the driver task (asserted by the test).
    pub violations: Vec<String>,
    pub stats: Stats,
}

impl ReplicaModel {
    fn end(&self) -> i64 {
        match self.content.last() {
            Some((_, id)) => last_offset(&self.batches[id].1) + 1,
            None => self.start,
        }
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn acknowledge(&mut self) {
        for (base, id) in std::mem::take(&mut self.in_flight) {
            self.content.push((base, id));
            self.acked.insert(base, id);
        }
    }

    /// The log as a truncation to `offset` leaves it (Kafka's truncateTo).
    fn truncated(&self, offset: i64) -> (i64, Vec<(i64, u64)>) {
        if offset < self.start {
            return (offset, Vec::new());
        }
        let keep = self
            .content
            .iter()
            .take_while(|(_, id)| last_offset(&self.batches[id].1) < offset)
            .count();
        (self.start, self.content[..keep].to_vec())
    }

    fn begin(&mut self, after: (i64, Vec<(i64, u64)>)) {
        self.truncating = true;
        self.pending = Some(Pending {
            before: (self.start, self.content.clone()),
            after,
        });
    }

    /// The log is `(start, content)` after a truncation: what it removed
    /// and the leader does not hold may never come back.
    fn apply(&mut self, start: i64, content: Vec<(i64, u64)>) {
        let kept: HashSet<u64> = content.iter().map(|(_, id)| *id).collect();
        for (_, id) in &self.content {
            if !kept.contains(id) && !self.other.holds(*id) {
                self.removed.insert(*id);
            }
        }
        self.acked.retain(|_, id| kept.contains(id));
        self.start = start;
        self.content = content;
    }

    fn finish(&mut self, log: &Log) {
        self.truncating = false;
        let Some(p) = self.pending.take() else { return };
        let (start, content) = p.after;
        self.apply(start, content);
        if (log.log_start_offset(), log.log_end_offset()) != (self.start, self.end()) {
            self.violations.push(format!(
                "truncated log is [{}, {}), expected [{}, {})",
                log.log_start_offset(),
                log.log_end_offset(),
                self.start,
                self.end()
            ));
        }
    }
}

/// Why the driver stopped: the disk failed (a crash or an injected
/// fault), or the log refused what it should have taken.
enum Failure {
    Disk,
    Bug(String),
}

impl From<AppendError> for Failure {
    fn from(e: AppendError) -> Failure {
        match e {
            AppendError::Io(_) | AppendError::Poisoned | AppendError::Closed => Failure::Disk,
            e => Failure::Bug(e.to_string()),
        }
    }
}

impl From<RecoveryError> for Failure {
    fn from(e: RecoveryError) -> Failure {
        match e {
            RecoveryError::Io { .. } => Failure::Disk,
            e => Failure::Bug(e.to_string()),
        }
    }
}

fn last_offset(batch: &[u8]) -> i64 {
    BatchHeader::parse(batch).expect("header").last_offset()
}

/// A batch of `epoch` at `base`, as its leader holds it.
fn leader_bytes(id: u64, rng: &mut SimRng, base: i64, epoch: i32) -> Vec<u8> {
    let big = rng.below(4) == 0;
    // The smallest segment of `config` is 4 KiB: every batch fits in one.
    let extra = rng.below(if big { 3500 } else { 500 }) as usize;
    let mut b = batch(id, 1 + rng.below(3) as i32, id as i64, extra);
    set_base_offset(&mut b, base);
    set_partition_leader_epoch(&mut b, epoch);
    b.to_vec()
}

/// Runs `phases` leadership terms on `log`; returns the log it ends with
/// and whether an operation failed (then it stopped).
pub async fn drive(
    mut log: Rc<Log>,
    m: Rc<RefCell<ReplicaModel>>,
    phases: u64,
    seed: u64,
) -> (Rc<Log>, bool) {
    let mut rng = SimRng::new(seed);
    let mut failed = false;
    for _ in 0..phases {
        let leads = {
            let m = m.borrow();
            rng.below(3) == 0 && m.end() >= m.other.start
        };
        let r = if leads {
            lead(&log, &m, &mut rng).await
        } else {
            follow(&mut log, &m, &mut rng).await
        };
        if let Err(f) = r {
            if let Failure::Bug(e) = f {
                m.borrow_mut().violations.push(e);
            }
            failed = true;
            break;
        }
    }
    m.borrow_mut().done = true;
    (log, failed)
}

/// The log leads a term: the other replica keeps what it shares with it,
/// the log appends stamped batches, the other copies some of them.
async fn lead(
    log: &Rc<Log>,
    m: &Rc<RefCell<ReplicaModel>>,
    rng: &mut SimRng,
) -> Result<(), Failure> {
    let epoch = {
        let mut mm = m.borrow_mut();
        mm.epoch += 1;
        mm.stats.leader_terms += 1;
        let content = mm.content.clone();
        mm.other.truncate_to_common(&content);
        mm.epoch
    };
    log.become_leader(epoch).await?;
    for _ in 0..1 + rng.below(6) {
        let (id, bytes) = {
            let mut mm = m.borrow_mut();
            let id = mm.new_id();
            let base = mm.end();
            let stamped = leader_bytes(id, rng, base, epoch);
            mm.batches.insert(id, (base, stamped.clone()));
            mm.in_flight = vec![(base, id)];
            // What a producer sends: no offset, no epoch.
            let mut plain = stamped;
            set_base_offset(&mut plain, 0);
            set_partition_leader_epoch(&mut plain, -1);
            (id, plain)
        };
        let info = log.append(BytesMut::from(&bytes[..])).await?;
        let mut mm = m.borrow_mut();
        if info.base_offset != mm.batches[&id].0 {
            mm.violations
                .push(format!("leader append of {id} at {}", info.base_offset));
        }
        mm.acknowledge();
    }
    // The other replica fetches some of them (if its log ends at a batch
    // boundary of this one).
    let mut mm = m.borrow_mut();
    let copies = rng.below(8) as usize;
    for _ in 0..copies {
        let end = mm.other.end();
        let Some(&(base, id)) = mm.content.iter().find(|(b, _)| *b == end) else {
            break;
        };
        let bytes = mm.batches[&id].1.clone();
        let h = BatchHeader::parse(&bytes).expect("header");
        mm.other.push(OtherBatch {
            base,
            last: h.last_offset(),
            epoch: h.partition_leader_epoch,
            id,
            bytes,
        });
    }
    Ok(())
}

/// The other replica leads a term: it may delete its records and append
/// some; the log truncates as a Kafka follower, starts again past the
/// leader's start if it must, and fetches everything.
async fn follow(
    log: &mut Rc<Log>,
    m: &Rc<RefCell<ReplicaModel>>,
    rng: &mut SimRng,
) -> Result<(), Failure> {
    {
        let mut mm = m.borrow_mut();
        mm.epoch += 1;
        let (epoch, end) = (mm.epoch, mm.other.end());
        mm.other.epochs.assign(epoch, end);
        for _ in 0..rng.below(6) {
            let id = mm.new_id();
            let base = mm.other.end();
            let bytes = leader_bytes(id, rng, base, epoch);
            let last = last_offset(&bytes);
            mm.other.push(OtherBatch {
                base,
                last,
                epoch,
                id,
                bytes,
            });
        }
        if rng.below(6) == 0 {
            // DeleteRecords up to its end: the log, if behind, must start
            // again there.
            let end = mm.other.end();
            mm.other.batches.clear();
            mm.other.start = end;
            mm.other.epochs.truncate_from_start(end);
        }
    }
    let offset = truncation_offset(log, &m.borrow().other);
    {
        let mut mm = m.borrow_mut();
        mm.stats.truncations += 1;
        let after = mm.truncated(offset);
        if after.1.len() < mm.content.len() || after.0 != mm.start {
            mm.stats.cuts += 1;
        }
        mm.begin(after);
    }
    *log = log.truncate_to(offset).await?;
    {
        let mut mm = m.borrow_mut();
        mm.finish(log);
        check_prefix_of_leader(&mut mm);
    }
    let leader_start = m.borrow().other.start;
    if log.log_end_offset() < leader_start {
        {
            let mut mm = m.borrow_mut();
            mm.stats.resets += 1;
            mm.begin((leader_start, Vec::new()));
        }
        *log = log.reset_to(leader_start).await?;
        m.borrow_mut().finish(log);
    }
    loop {
        let fetched = {
            let mut mm = m.borrow_mut();
            let from = mm.end();
            let n = 1 + rng.below(4) as usize;
            let batches: Vec<OtherBatch> = mm
                .other
                .batches
                .iter()
                .filter(|b| b.base >= from)
                .take(n)
                .cloned()
                .collect();
            let mut buf = BytesMut::new();
            for b in &batches {
                buf.extend_from_slice(&b.bytes);
                mm.batches.insert(b.id, (b.base, b.bytes.clone()));
                mm.in_flight.push((b.base, b.id));
            }
            buf
        };
        if fetched.is_empty() {
            return Ok(());
        }
        log.append_replicated(fetched).await?;
        let mut mm = m.borrow_mut();
        mm.stats.replicated += 1;
        mm.acknowledge();
    }
}

/// Where a Kafka follower truncates: it asks its leader for the end of
/// its latest epoch; if the leader answers an epoch the follower does not
/// have, it asks again for the largest one it has below (KIP-279); the
/// answer bounds the follower's own end of that epoch (KIP-101). With no
/// common epoch it keeps nothing past the leader's answer.
fn truncation_offset(log: &Log, leader: &Other) -> i64 {
    let end = log.log_end_offset();
    let Some(mut asked) = log.latest_epoch() else {
        return end;
    };
    loop {
        let (epoch, leader_end) = leader.epochs.end_offset_for_epoch(asked, leader.end());
        if epoch < 0 || leader_end < 0 {
            return end.min(leader_end.max(0));
        }
        let (mine, my_end) = log.end_offset_for_epoch(epoch);
        if mine < 0 {
            return end.min(leader_end);
        }
        if mine == epoch {
            return end.min(leader_end).min(my_end);
        }
        assert!(mine < asked, "asked epochs only go down");
        asked = mine;
    }
}

/// After a truncation the log is a prefix of the leader's (where the two
/// overlap), the property KIP-101 and KIP-279 exist for.
fn check_prefix_of_leader(m: &mut ReplicaModel) {
    let leader: HashMap<i64, u64> = m.other.batches.iter().map(|b| (b.base, b.id)).collect();
    let start = m.other.start;
    let diverged = m
        .content
        .iter()
        .find(|(base, id)| *base >= start && leader.get(base) != Some(id))
        .copied();
    if let Some((base, id)) = diverged {
        m.violations.push(format!(
            "after truncation the log holds batch {id} at {base}, the leader does not"
        ));
    }
    if m.end() > m.other.end().max(start) {
        m.violations.push(format!(
            "after truncation the log ends at {}, past the leader's {}",
            m.end(),
            m.other.end()
        ));
    }
}

/// The checks after every reopen (see the module docs); the model then
/// takes what the log holds.
pub async fn verify(log: &Log, model: &Rc<RefCell<ReplicaModel>>) {
    assert_eq!(log.high_watermark(), log.log_end_offset());
    let all = read_all(log, log.log_start_offset(), 1 << 16).await;
    let mut m = model.borrow_mut();
    assert!(m.violations.is_empty(), "{:?}", m.violations);
    let mut got = Vec::new();
    for (h, b) in &all {
        let id = id_of(b);
        let Some((base, bytes)) = m.batches.get(&id) else {
            panic!("batch {id} at {} was never appended", h.base_offset);
        };
        assert_eq!(*base, h.base_offset, "batch {id} moved");
        assert_eq!(&b[..], &bytes[..], "batch {id} at {base} differs");
        assert!(
            !m.removed.contains(&id),
            "truncated batch {id} is back at {base}"
        );
        got.push((h.base_offset, id));
    }
    let start = log.log_start_offset();
    match m.pending.take() {
        Some(p) => {
            m.stats.interrupted += 1;
            let now = (start, got.clone());
            if now == p.after {
                m.apply(start, got.clone());
            } else {
                assert_eq!(
                    now, p.before,
                    "neither the log before the truncation nor after"
                );
            }
        }
        None => {
            let mut possible = m.content.clone();
            possible.extend(m.in_flight.iter().copied());
            assert_eq!(start, m.start, "log start moved");
            assert!(
                possible.starts_with(&got),
                "the log is not a prefix of what it held: {got:?} vs {possible:?}"
            );
        }
    }
    for (off, id) in &m.acked {
        assert!(
            got.contains(&(*off, *id)),
            "acknowledged batch {id} lost at offset {off}"
        );
    }
    let mut epochs: Vec<EpochEntry> = Vec::new();
    for (h, _) in &all {
        let e = h.partition_leader_epoch;
        if epochs.last().is_none_or(|l| e > l.epoch) {
            epochs.push(EpochEntry {
                epoch: e,
                start_offset: h.base_offset,
            });
        }
    }
    assert_eq!(
        log.epoch_entries(),
        epochs,
        "epoch cache vs the batches' epochs"
    );
    m.content = got;
    m.in_flight.clear();
    m.truncating = false;
    m.done = false;
}
