//! Crash consistency on the simulated disk. Each seed runs concurrent
//! appenders (one of them an idempotent producer) under flush=batch, crashes
//! the disk at a random moment (unsynced writes lost, kept or torn), reopens
//! and checks: every acknowledged batch reads back intact at its offset,
//! offsets are contiguous, every visible batch is one that was appended
//! (nothing past a torn write), none twice; then appends again. Replay one
//! seed with SPINDLE_CRASH_SEED=N; SPINDLE_CRASH_SEEDS sets how many run.

mod common;

use bytes::BytesMut;
use common::*;
use spindle_engine::batch::build_test_batch_idempotent;
use spindle_engine::storage::sim::SimRng;
use spindle_engine::storage::{SimDisk, SimStorage};
use spindle_engine::{BatchCache, FlushMode, LogConfig, PartitionLog};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;

const ROUNDS: usize = 3;
const PRODUCER_ID: i64 = 4242;

#[derive(Default)]
struct Model {
    next_id: u64,
    /// Every batch ever handed to append, by id (bytes before offsets).
    appended: BTreeMap<u64, Vec<u8>>,
    /// Acknowledged (base offset, id).
    acked: Vec<(i64, u64)>,
    /// The idempotent producer's next sequence and its unacknowledged batch.
    seq: i32,
    pending: Option<(u64, Vec<u8>)>,
}

struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "crash-consistency failure: replay with SPINDLE_CRASH_SEED={}",
                self.0
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn crash_consistency_over_many_seeds() {
    let (start, count) = match env_u64("SPINDLE_CRASH_SEED") {
        Some(s) => (s, 1),
        None => (1, env_u64("SPINDLE_CRASH_SEEDS").unwrap_or(1000)),
    };
    let (acked, appended) = run(async move {
        let (mut acked, mut appended) = (0, 0);
        for seed in start..start + count {
            let _guard = SeedGuard(seed);
            let m = one_seed(seed).await;
            acked += m.acked.len();
            appended += m.appended.len();
        }
        (acked, appended)
    });
    eprintln!("{count} seeds: {appended} batches appended, {acked} acknowledged");
    // The test means something only if crashes hit acknowledged data.
    assert!(
        acked > count as usize,
        "too few acknowledged batches to be a test"
    );
}

fn config(rng: &mut SimRng) -> LogConfig {
    LogConfig {
        segment_bytes_max: 4096 * (1 + rng.below(6)),
        index_interval_bytes: 128 + rng.below(2048) as u32,
        flush: FlushMode::Batch,
        ..LogConfig::default()
    }
}

async fn one_seed(seed: u64) -> Model {
    let mut rng = SimRng::new(seed);
    let disk = SimDisk::with_delays(seed);
    let dir = PathBuf::from("/data/topic-0");
    let cfg = config(&mut rng);
    let model = Rc::new(RefCell::new(Model::default()));
    for _round in 0..ROUNDS {
        let cache = BatchCache::new(rng.below(2) * (64 << 10));
        let log = PartitionLog::open_with(disk.storage(), dir.clone(), cfg.clone(), cache)
            .await
            .expect("recovery");
        verify(&log, &model).await;
        let mut tasks = Vec::new();
        for w in 0..1 + rng.below(3) {
            let appends = 1 + rng.below(12);
            let wseed = rng.next_u64();
            tasks.push(
                glommio::spawn_local(appender(log.clone(), model.clone(), w == 0, appends, wseed))
                    .detach(),
            );
        }
        for _ in 0..rng.below(400) {
            futures_lite::future::yield_now().await;
        }
        disk.crash(&mut rng);
        for t in tasks {
            t.await;
        }
        drop(log);
    }
    let log = PartitionLog::open_with(disk.storage(), dir, cfg, BatchCache::new(0))
        .await
        .expect("recovery");
    verify(&log, &model).await;
    drop(log);
    Rc::try_unwrap(model)
        .ok()
        .expect("model still shared")
        .into_inner()
}

fn idem_bytes(id: u64, seq: i32, extra: usize) -> Vec<u8> {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend(std::iter::repeat_n(7u8, extra));
    build_test_batch_idempotent(1, id as i64, &payload, PRODUCER_ID, 0, seq)
}

async fn appender(
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
                if idempotent {
                    m.pending = None;
                    m.seq += 1;
                }
            }
            Err(_) => return,
        }
    }
}

async fn verify(log: &PartitionLog<SimStorage>, model: &Rc<RefCell<Model>>) {
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
