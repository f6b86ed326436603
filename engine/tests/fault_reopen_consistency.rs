//! Faults, the broker's reopen of a poisoned log, and power loss, on the
//! simulated disk. Each seed runs rounds of concurrent appenders (one an
//! idempotent producer that retries its unacknowledged batch, as librdkafka
//! does) while writes or fdatasyncs start failing at a random point. When
//! the log is poisoned the faults stop (sometimes only after a first reopen
//! attempt failed), the log is closed and reopened, as `net/src/repair.rs`
//! does, and checked; at random the disk then loses power (unsynced writes
//! lost, kept or torn) and the log is reopened and checked again.
//!
//! Checked after every reopen: every acknowledged batch is at its offset
//! with its bytes, offsets are contiguous, every visible batch is one that
//! was appended, none twice (the producer's retries are deduplicated),
//! plain batches in append order. So nothing that was not durable was ever
//! acknowledged, including retries acknowledged as duplicates of batches
//! that recovery found. Replay one
//! seed with SPINDLE_CRASH_SEED=N; SPINDLE_CRASH_SEEDS sets how many run.
//!
//! The follower test runs the same faults, reopens and power losses under
//! a replica whose leadership moves (`common/replica_model.rs`): a fault
//! may hit a leader's append, a follower's append, or any step of a
//! truncation or reset (closing, recording it, the reopen that carries it
//! out); the broker's reopen then finishes it.

mod common;
#[path = "common/replica_model.rs"]
mod replica_model;
#[path = "common/sim_model.rs"]
mod sim_model;

use common::run;
use replica_model::{ReplicaModel, Stats};
use sim_model::*;
use spindle_engine::storage::sim::SimRng;
use spindle_engine::storage::{SimDisk, SimStorage};
use spindle_engine::{BatchCache, LogConfig, PartitionLog};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const ROUNDS: usize = 4;

/// What one seed did, beside the model's own counts.
#[derive(Default)]
struct Faults {
    poisonings: u64,
    power_losses: u64,
}

#[test]
fn acknowledged_batches_survive_faults_reopens_and_power_loss() {
    let (start, count) = seeds(2000);
    let totals = run(async move {
        let mut t = [0u64; 5];
        for seed in start..start + count {
            let _guard = SeedGuard {
                test: "fault/reopen",
                seed,
            };
            let (m, f) = one_seed(seed).await;
            for (x, v) in t.iter_mut().zip([
                m.acked.len() as u64,
                m.appended.len() as u64,
                m.duplicates,
                f.poisonings,
                f.power_losses,
            ]) {
                *x += v;
            }
        }
        t
    });
    let [acked, appended, dups, poisonings, losses] = totals;
    eprintln!(
        "{count} seeds: {appended} batches appended, {acked} acknowledged ({dups} as duplicates \
         of batches found by recovery), {poisonings} poisonings, {losses} power losses"
    );
    // Meaningful only if faults hit and retries were deduplicated.
    assert!(poisonings > count / 2, "too few poisonings: {poisonings}");
    assert!(
        one_seed_env() || dups > 0,
        "no retry was acknowledged as a duplicate"
    );
}

fn one_seed_env() -> bool {
    env_u64("SPINDLE_CRASH_SEED").is_some()
}

async fn open(disk: &Rc<SimDisk>, dir: &Path, cfg: &LogConfig) -> Rc<PartitionLog<SimStorage>> {
    // A reopen while the fault lasts fails (the broker keeps the partition
    // offline and retries); the fault is gone by the second try.
    match PartitionLog::open_with(
        disk.storage(),
        dir.to_path_buf(),
        cfg.clone(),
        BatchCache::new(0),
    )
    .await
    {
        Ok(l) => l,
        Err(_) => {
            disk.heal();
            PartitionLog::open_with(
                disk.storage(),
                dir.to_path_buf(),
                cfg.clone(),
                BatchCache::new(0),
            )
            .await
            .expect("recovery once the fault is gone")
        }
    }
}

async fn one_seed(seed: u64) -> (Model, Faults) {
    let mut rng = SimRng::new(seed);
    let disk = SimDisk::with_delays(seed);
    let dir = PathBuf::from("/data/topic-0");
    let cfg = config(&mut rng);
    let model = Rc::new(RefCell::new(Model::default()));
    let mut faults = Faults::default();
    let mut log = open(&disk, &dir, &cfg).await;
    for _round in 0..ROUNDS {
        verify(&log, &model).await;
        match rng.below(3) {
            0 => disk.fail_writes_after(rng.below(24)),
            1 => disk.fail_syncs_after(rng.below(8)),
            _ => {}
        }
        let mut tasks = Vec::new();
        for w in 0..1 + rng.below(3) {
            let appends = 1 + rng.below(10);
            let wseed = rng.next_u64();
            tasks.push(
                glommio::spawn_local(appender(log.clone(), model.clone(), w == 0, appends, wseed))
                    .detach(),
            );
        }
        for t in tasks {
            t.await;
        }
        if log.is_poisoned() {
            faults.poisonings += 1;
            // Sometimes the fault outlasts the first reopen attempt.
            if rng.below(2) == 0 {
                disk.heal();
            }
            assert!(
                log.close().await.is_err(),
                "a poisoned log does not close cleanly"
            );
            drop(log);
            log = open(&disk, &dir, &cfg).await;
            verify(&log, &model).await;
        } else {
            disk.heal();
        }
        if rng.below(3) == 0 {
            faults.power_losses += 1;
            drop(log);
            disk.crash(&mut rng);
            log = open(&disk, &dir, &cfg).await;
        }
    }
    verify(&log, &model).await;
    drop(log);
    disk.crash(&mut rng);
    let log = open(&disk, &dir, &cfg).await;
    verify(&log, &model).await;
    drop(log);
    let model = Rc::try_unwrap(model)
        .ok()
        .expect("model still shared")
        .into_inner();
    (model, faults)
}

#[test]
fn follower_survives_faults_reopens_and_power_loss() {
    let (start, count) = seeds(1000);
    let (t, poisonings) = run(async move {
        let mut t = Stats::default();
        let mut poisonings = 0;
        for seed in start..start + count {
            let _guard = SeedGuard {
                test: "follower fault/reopen",
                seed,
            };
            let (s, p) = follower_seed(seed).await;
            t += s;
            poisonings += p;
        }
        (t, poisonings)
    });
    eprintln!("{count} seeds: {poisonings} failed operations, {t:?}");
    if count >= 100 {
        assert!(poisonings > count / 2, "too few faults: {poisonings}");
        assert!(
            t.interrupted > count / 20,
            "too few faults during truncations"
        );
        assert!(t.cuts > count / 4 && t.resets > 0);
    }
}

async fn follower_seed(seed: u64) -> (Stats, u64) {
    let mut rng = SimRng::new(seed.wrapping_mul(0x9E37_79B9));
    let disk = SimDisk::with_delays(seed);
    let dir = PathBuf::from("/data/topic-0");
    let cfg = config(&mut rng);
    let model = Rc::new(RefCell::new(ReplicaModel::default()));
    let mut failures = 0;
    let mut log = open(&disk, &dir, &cfg).await;
    for _round in 0..ROUNDS {
        replica_model::verify(&log, &model).await;
        match rng.below(3) {
            0 => disk.fail_writes_after(rng.below(60)),
            1 => disk.fail_syncs_after(rng.below(20)),
            _ => {}
        }
        let phases = 1 + rng.below(4);
        let (l, failed) = replica_model::drive(log, model.clone(), phases, rng.next_u64()).await;
        log = l;
        if failed || log.is_poisoned() {
            failures += 1;
            // Sometimes the fault outlasts the first reopen attempt.
            if rng.below(2) == 0 {
                disk.heal();
            }
            // A poisoned log does not close cleanly; one a truncation
            // closed is closed already.
            let _ = log.close().await;
            drop(log);
            log = open(&disk, &dir, &cfg).await;
            replica_model::verify(&log, &model).await;
        }
        disk.heal();
        if rng.below(3) == 0 {
            drop(log);
            disk.crash(&mut rng);
            log = open(&disk, &dir, &cfg).await;
        }
    }
    replica_model::verify(&log, &model).await;
    drop(log);
    disk.crash(&mut rng);
    let log = open(&disk, &dir, &cfg).await;
    replica_model::verify(&log, &model).await;
    drop(log);
    let stats = model.borrow().stats;
    (stats, failures)
}
