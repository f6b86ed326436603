//! What the crash and fault tests on the simulated disk share: the model
//! of what was appended and acknowledged, the appender tasks that drive a
//! log (one of them an idempotent producer that retries its unacknowledged
//! batch, as librdkafka does), and the check run after every reopen.

use crate::common::*;
use bytes::BytesMut;
use spindle_engine::batch::build_test_batch_idempotent;
use spindle_engine::storage::sim::SimRng;
use spindle_engine::storage::SimStorage;
use spindle_engine::{FlushMode, LogConfig, PartitionLog};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

const PRODUCER_ID: i64 = 4242;

#[derive(Default)]
pub struct Model {
    pub next_id: u64,
    /// Every batch ever handed to append, by id (bytes before offsets).
    pub appended: BTreeMap<u64, Vec<u8>>,
    /// Acknowledged (base offset, id).
    pub acked: Vec<(i64, u64)>,
    /// The idempotent producer's next sequence and its unacknowledged batch.
    pub seq: i32,
    pub pending: Option<(u64, Vec<u8>)>,
    /// Retries acknowledged as duplicates of batches already in the log.
    pub duplicates: u64,
}

/// Prints how to replay the seed if the test panics while it lives.
pub struct SeedGuard {
    pub test: &'static str,
    pub seed: u64,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} failure: replay with SPINDLE_CRASH_SEED={}",
                self.test, self.seed
            );
        }
    }
}

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The seeds to run: SPINDLE_CRASH_SEED=N replays one, SPINDLE_CRASH_SEEDS
/// sets how many run from 1 (else `default_count`).
pub fn seeds(default_count: u64) -> (u64, u64) {
    match env_u64("SPINDLE_CRASH_SEED") {
        Some(s) => (s, 1),
        None => (1, env_u64("SPINDLE_CRASH_SEEDS").unwrap_or(default_count)),
    }
}

/// Small segments and a random index interval, under flush=batch.
pub fn config(rng: &mut SimRng) -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096 * (1 + rng.below(6)),
        index_interval_bytes: 128 + rng.below(2048) as u32,
        flush: FlushMode::Batch,
        ..LogConfig::default()
    }
}

fn idem_bytes(id: u64, seq: i32, extra: usize) -> Vec<u8> {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend(std::iter::repeat_n(7u8, extra));
    build_test_batch_idempotent(1, id as i64, &payload, PRODUCER_ID, 0, seq)
}

/// Makes `appends` appends of random sizes, recording each in the model;
/// stops at the first error.
pub async fn appender(
    log: Rc<PartitionLog<SimStorage>>,
    model: Rc<RefCell<Model>>,
    idempotent: bool,
    appends: u64,
    seed: u64,
) {
    let mut rng = SimRng::new(seed);
    for _ in 0..appends {
        let big = rng.below(4) == 0;
        let extra = rng.below(if big { 9000 } else { 600 }) as usize;
        let (id, bytes) = {
            let mut m = model.borrow_mut();
            match (idempotent, m.pending.clone()) {
                // Retry the unacknowledged batch first, as a producer would.
                (true, Some(p)) => p,
                _ => {
                    let id = m.next_id;
                    m.next_id += 1;
                    let b = if idempotent {
                        let b = idem_bytes(id, m.seq, extra);
                        m.pending = Some((id, b.clone()));
                        b
                    } else {
                        batch(id, 1 + rng.below(3) as i32, id as i64, extra).to_vec()
                    };
                    m.appended.insert(id, b.clone());
                    (id, b)
                }
            }
        };
        match log.append(BytesMut::from(&bytes[..])).await {
            Ok(info) => {
                let mut m = model.borrow_mut();
                m.acked.push((info.base_offset, id));
                if info.duplicate {
                    m.duplicates += 1;
                }
                if idempotent {
                    m.pending = None;
                    m.seq += 1;
                }
            }
            Err(_) => return,
        }
    }
}

/// Every acknowledged batch is at its offset with its bytes, offsets are
/// contiguous, every visible batch is one that was appended, none twice,
/// plain batches in append order.
pub async fn verify(log: &PartitionLog<SimStorage>, model: &Rc<RefCell<Model>>) {
    assert_eq!(
        log.high_watermark(),
        log.log_end_offset(),
        "after recovery everything is durable"
    );
    let all = read_all(log, log.log_start_offset(), 1 << 16).await;
    let m = model.borrow();
    let mut seen = HashSet::new();
    let mut by_offset = BTreeMap::new();
    let mut last_id = None;
    for (h, b) in &all {
        let id = id_of(b);
        let original = m
            .appended
            .get(&id)
            .unwrap_or_else(|| panic!("batch at {} was never appended", h.base_offset));
        assert_eq!(
            &b[8..],
            &original[8..],
            "batch at {} differs from what was appended",
            h.base_offset
        );
        assert!(seen.insert(id), "batch {id} appears twice");
        // Plain batches get ids and offsets in call order (the idempotent
        // producer's retries do not).
        if h.producer_id < 0 {
            assert!(
                last_id.is_none_or(|l| id > l),
                "batch {id} out of append order"
            );
            last_id = Some(id);
        }
        by_offset.insert(h.base_offset, id);
    }
    for (off, id) in &m.acked {
        assert_eq!(
            by_offset.get(off),
            Some(id),
            "acknowledged batch {id} lost at offset {off}"
        );
    }
}
