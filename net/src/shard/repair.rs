//! Poisoned partition logs heal on their own. After a failed write or
//! fsync the engine refuses every append to that log (nothing unsynced is
//! ever acknowledged); the owning shard then closes it (waiting for I/O in
//! flight), and after a backoff reopens it, which re-runs recovery: the
//! tail is rescanned and synced, so what was written before the failure is
//! kept only if it is whole and durable. Meanwhile appends get
//! KAFKA_STORAGE_ERROR, which librdkafka and the Java client retry (the
//! Java client's `KafkaStorageException` is retriable; librdkafka refreshes
//! metadata and retries it), reads keep being served by the old log, and
//! the shard's other partitions are untouched. A reopen that fails leaves
//! the partition offline (every request gets KAFKA_STORAGE_ERROR) until the
//! next attempt; the backoff doubles while the log keeps failing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use spindle_engine::PartitionLog;
use tracing::warn;

use super::Shard;
use crate::constants::{REOPEN_BACKOFF_MS_MAX, REOPEN_BACKOFF_MS_MIN};

type Key = (String, i32);

/// Repairs under way on one shard.
#[derive(Default)]
pub struct Repairs(RefCell<HashMap<Key, Repair>>);

struct Repair {
    backoff: Duration,
    /// A reopen is scheduled or running.
    running: bool,
    /// The last reopen failed: refuse requests until the next attempt.
    offline: bool,
    reopened_at: Option<Instant>,
}

fn min_backoff() -> Duration {
    Duration::from_millis(REOPEN_BACKOFF_MS_MIN)
}

impl Repairs {
    pub fn is_offline(&self, topic: &str, partition: i32) -> bool {
        self.0
            .borrow()
            .get(&(topic.to_string(), partition))
            .is_some_and(|r| r.offline)
    }

    /// The backoff for a new repair, `None` if one is already under way. A
    /// log poisoned again soon after its last reopen backs off longer.
    fn begin(&self, key: &Key) -> Option<Duration> {
        let mut m = self.0.borrow_mut();
        let r = m.entry(key.clone()).or_insert(Repair {
            backoff: min_backoff(),
            running: false,
            offline: false,
            reopened_at: None,
        });
        if r.running {
            return None;
        }
        let max = Duration::from_millis(REOPEN_BACKOFF_MS_MAX);
        r.backoff = match r.reopened_at {
            Some(t) if t.elapsed() < max * 4 => (r.backoff * 2).min(max),
            _ => min_backoff(),
        };
        r.running = true;
        Some(r.backoff)
    }

    fn failed(&self, key: &Key) -> Duration {
        let mut m = self.0.borrow_mut();
        let Some(r) = m.get_mut(key) else {
            return min_backoff();
        };
        r.offline = true;
        r.backoff = (r.backoff * 2).min(Duration::from_millis(REOPEN_BACKOFF_MS_MAX));
        r.backoff
    }

    fn done(&self, key: &Key) {
        if let Some(r) = self.0.borrow_mut().get_mut(key) {
            r.running = false;
            r.offline = false;
            r.reopened_at = Some(Instant::now());
        }
    }

    fn forget(&self, key: &Key) {
        self.0.borrow_mut().remove(key);
    }
}

/// Starts the repair of a poisoned log unless one is under way.
pub fn schedule(shard: &Rc<Shard>, topic: &str, partition: i32, log: &Rc<PartitionLog>) {
    let key = (topic.to_string(), partition);
    let Some(backoff) = shard.repairs.begin(&key) else {
        return;
    };
    let cause = log.poison_cause().unwrap_or_default();
    warn!(
        shard = shard.id,
        topic,
        partition,
        error = %cause,
        retry_ms = backoff.as_millis() as u64,
        "partition log failed an I/O operation; appends get KAFKA_STORAGE_ERROR until it is reopened"
    );
    let shard = shard.clone();
    let log = log.clone();
    glommio::spawn_local(async move { run(shard, key, log, backoff).await }).detach();
}

async fn run(shard: Rc<Shard>, key: Key, log: Rc<PartitionLog>, mut backoff: Duration) {
    let (topic, partition) = (key.0.as_str(), key.1);
    let mut old = Some(log);
    loop {
        glommio::timer::sleep(backoff).await;
        match shard.reopen_log(topic, partition, old.take()).await {
            Ok(()) => {
                shard.repairs.done(&key);
                warn!(
                    shard = shard.id,
                    topic, partition, "partition log reopened after an I/O error; appends resume"
                );
                return;
            }
            Err(None) => {
                // Deleted or no longer ours meanwhile.
                shard.repairs.forget(&key);
                return;
            }
            Err(Some(e)) => {
                backoff = shard.repairs.failed(&key);
                warn!(
                    shard = shard.id,
                    topic,
                    partition,
                    error = %e,
                    retry_ms = backoff.as_millis() as u64,
                    "reopening the partition log failed; it stays offline"
                );
            }
        }
    }
}
