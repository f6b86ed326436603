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

mod common;
#[path = "common/sim_model.rs"]
mod sim_model;

use common::run;
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
