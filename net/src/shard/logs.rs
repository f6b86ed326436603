//! The partition logs a shard owns: opened on first use or at start
//! (where recovery runs), reopened after a failure, dropped with their
//! topic, closed cleanly at shutdown.

use std::path::PathBuf;
use std::rc::Rc;

use spindle_engine::{LogConfig, PartitionLog};
use tracing::{debug, info, warn};

use super::Shard;
use crate::catalog::topic_config;
use crate::errors::{self, ErrorCode};

impl Shard {
    /// The log of a partition this shard owns, opened on first use.
    pub async fn log(&self, topic: &str, partition: i32) -> Result<Rc<PartitionLog>, ErrorCode> {
        let key = (topic.to_string(), partition);
        // Ops on a partition must reach its log in arrival order: an append
        // that arrived while the log was being opened must not be overtaken
        // by a later one (an idempotent producer's next batch would look
        // like a sequence gap). So the fast path is taken only when nobody
        // waits for the open lock, which hands itself out in order.
        if self.open_lock.is_idle() {
            if let Some(l) = self.logs.borrow().get(&key) {
                return Ok(l.clone());
            }
        }
        let _permit = self.open_lock.lock().await;
        if let Some(l) = self.logs.borrow().get(&key) {
            return Ok(l.clone());
        }
        if self.closing.get() {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if self.repairs.is_offline(topic, partition) {
            // Its reopen failed; the repair task retries it.
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        let (dir, cfg) = self
            .log_location(topic, partition)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        match PartitionLog::open(dir.clone(), cfg, self.cache.clone()).await {
            Ok(log) => {
                log.set_write_budget(self.write_budget.clone());
                debug!(shard = self.id, topic, partition, "opened partition log");
                self.logs.borrow_mut().insert(key, log.clone());
                Ok(log)
            }
            Err(e) => {
                warn!(shard = self.id, dir = %dir.display(), error = %e, "cannot open partition log");
                Err(errors::recovery_error_code(&e))
            }
        }
    }

    /// Directory and log config of a partition owned here.
    fn log_location(&self, topic: &str, partition: i32) -> Option<(PathBuf, LogConfig)> {
        let snap = self.snapshot();
        let meta = snap.topic(topic).filter(|t| {
            usize::try_from(partition)
                .ok()
                .and_then(|p| t.owners.get(p))
                == Some(&self.id)
        })?;
        let dir = self.config.data_dir.join(format!("{topic}-{partition}"));
        Some((dir, topic_config::log_config(&self.config, &meta.configs)))
    }

    /// Closes `old` (a poisoned log; waits for its I/O in flight) and opens
    /// the partition again, re-running recovery. `Err(None)`: the partition
    /// is gone or no longer ours; `Err(Some(e))`: the open failed.
    pub(crate) async fn reopen_log(
        &self,
        topic: &str,
        partition: i32,
        old: Option<Rc<PartitionLog>>,
    ) -> Result<(), Option<String>> {
        let key = (topic.to_string(), partition);
        let _permit = self.open_lock.lock().await;
        if self.closing.get() {
            return Err(None); // shutting down: the next start recovers it
        }
        if let Some(old) = old {
            let ours = self
                .logs
                .borrow()
                .get(&key)
                .is_some_and(|l| Rc::ptr_eq(l, &old));
            if !ours {
                return Err(None); // deleted meanwhile
            }
            self.logs.borrow_mut().remove(&key);
            let _ = old.close().await;
        }
        let (dir, cfg) = self.log_location(topic, partition).ok_or(None)?;
        match PartitionLog::open(dir, cfg, self.cache.clone()).await {
            Ok(log) => {
                self.logs.borrow_mut().insert(key, log);
                Ok(())
            }
            Err(e) => Err(Some(e.to_string())),
        }
    }

    /// Deletes the logs of partitions owned here (after the topic left
    /// the catalog).
    pub async fn drop_partitions(&self, topic: &str, partitions: &[i32]) {
        // Not while a log is being opened or reopened: an open racing the
        // removal would recreate the directory of a deleted topic.
        let _permit = self.open_lock.lock().await;
        for &p in partitions {
            let log = self.logs.borrow_mut().remove(&(topic.to_string(), p));
            let dir = self.config.data_dir.join(format!("{topic}-{p}"));
            match log {
                Some(log) => {
                    if let Err(e) = log.delete().await {
                        warn!(shard = self.id, topic, partition = p, error = %e, "delete failed");
                    }
                }
                None => {
                    // Never opened since start: remove the directory off the
                    // reactor.
                    let _ = blocking_remove_dir(dir).await;
                }
            }
        }
    }

    /// Opens every partition this shard owns (recovery runs here; the
    /// engine logs each recovery, a failure to open is a warning).
    pub async fn open_all(&self) {
        let snap = self.snapshot();
        let (mut opened, mut failed) = (0u32, 0u32);
        for t in snap.topics.values() {
            for (p, &owner) in t.owners.iter().enumerate() {
                if owner == self.id {
                    match self.log(&t.name, p as i32).await {
                        Ok(_) => opened += 1,
                        Err(_) => failed += 1,
                    }
                }
            }
        }
        if opened + failed > 0 {
            info!(shard = self.id, opened, failed, "partition logs opened");
        }
    }

    /// Enforces retention on every open log.
    pub async fn enforce_retention(&self) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let logs: Vec<_> = self
            .logs
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((topic, p), log) in logs {
            match log.enforce_retention(now_ms).await {
                Ok(0) => {}
                Ok(n) => debug!(
                    shard = self.id,
                    topic,
                    partition = p,
                    segments = n,
                    "retention deleted segments"
                ),
                Err(e) => {
                    warn!(shard = self.id, topic, partition = p, error = %e, "retention failed")
                }
            }
        }
    }

    /// Closes every log (flush and clean-shutdown marker).
    pub async fn close_all(&self) {
        // No open or reopen may start after this, and one under way ends
        // before the logs are drained (a log opened later would be left
        // unclosed and need recovery on the next start).
        self.closing.set(true);
        let _permit = self.open_lock.lock().await;
        let logs: Vec<_> = self.logs.borrow_mut().drain().collect();
        for ((topic, p), log) in logs {
            if let Err(e) = log.close().await {
                warn!(shard = self.id, topic, partition = p, error = %e, "close failed");
            }
        }
    }
}

async fn blocking_remove_dir(dir: std::path::PathBuf) -> std::io::Result<()> {
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("spindle-rmdir".into())
        .spawn(move || {
            let r = match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            };
            let _ = tx.send(r);
        })?;
    rx.recv_async()
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("rmdir thread died")))
}
