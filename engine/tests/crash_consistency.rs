//! Crash consistency on the simulated disk. Each seed runs concurrent
//! appenders (one of them an idempotent producer) under flush=batch, crashes
//! the disk at a random moment (unsynced writes lost, kept or torn), reopens
//! and checks: every acknowledged batch reads back intact at its offset,
//! offsets are contiguous, every visible batch is one that was appended
//! (nothing past a torn write), none twice; then appends again. Replay one
//! seed with SPINDLE_CRASH_SEED=N; SPINDLE_CRASH_SEEDS sets how many run.
//!
//! The follower test does the same to a replica whose leadership moves
//! (`common/replica_model.rs`): leader terms with stamped appends, follower
//! terms with truncations, resets and replicated appends, the crash aimed
//! at a truncation in half the rounds.

mod common;
#[path = "common/replica_model.rs"]
mod replica_model;
#[path = "common/sim_model.rs"]
mod sim_model;

use common::run;
use replica_model::{ReplicaModel, Stats};
use sim_model::*;
use spindle_engine::storage::sim::SimRng;
use spindle_engine::storage::SimDisk;
use spindle_engine::{BatchCache, PartitionLog};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

const ROUNDS: usize = 3;

#[test]
fn crash_consistency_over_many_seeds() {
    let (start, count) = seeds(1000);
    let (acked, appended) = run(async move {
        let (mut acked, mut appended) = (0, 0);
        for seed in start..start + count {
            let _guard = SeedGuard {
                test: "crash-consistency",
                seed,
            };
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

#[test]
fn follower_crash_consistency_over_many_seeds() {
    let (start, count) = seeds(1000);
    let t = run(async move {
        let mut t = Stats::default();
        for seed in start..start + count {
            let _guard = SeedGuard {
                test: "follower crash-consistency",
                seed,
            };
            t += follower_seed(seed).await;
        }
        t
    });
    eprintln!("{count} seeds: {t:?}");
    // Meaningful only if crashes hit truncations that removed data.
    if count >= 100 {
        assert!(t.cuts > count / 4, "too few truncations removed batches");
        assert!(
            t.interrupted > count / 10,
            "too few crashes during truncations"
        );
        assert!(t.resets > 0 && t.leader_terms > count);
    }
}

async fn follower_seed(seed: u64) -> Stats {
    let mut rng = SimRng::new(seed.wrapping_mul(0x9E37_79B9));
    let disk = SimDisk::with_delays(seed);
    let dir = PathBuf::from("/data/topic-0");
    let cfg = config(&mut rng);
    let model = Rc::new(RefCell::new(ReplicaModel::default()));
    for _round in 0..ROUNDS + 1 {
        let cache = BatchCache::new(rng.below(2) * (64 << 10));
        let log = PartitionLog::open_with(disk.storage(), dir.clone(), cfg.clone(), cache)
            .await
            .expect("recovery");
        replica_model::verify(&log, &model).await;
        let phases = 1 + rng.below(5);
        let driver = replica_model::drive(log, model.clone(), phases, rng.next_u64());
        let task = glommio::spawn_local(driver).detach();
        if rng.below(2) == 0 {
            // Aim at a truncation: wait for one to start.
            while !{
                let m = model.borrow();
                m.truncating || m.done
            } {
                futures_lite::future::yield_now().await;
            }
            for _ in 0..rng.below(300) {
                futures_lite::future::yield_now().await;
            }
        } else {
            for _ in 0..rng.below(3000) {
                futures_lite::future::yield_now().await;
            }
        }
        disk.crash(&mut rng);
        task.await;
    }
    let log = PartitionLog::open_with(disk.storage(), dir, cfg, BatchCache::new(0))
        .await
        .expect("recovery");
    replica_model::verify(&log, &model).await;
    drop(log);
    let stats = model.borrow().stats;
    stats
}
