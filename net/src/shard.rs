//! A shard: one pinned executor, the partition logs it owns, and the
//! cross-shard plumbing. Work on a partition always runs on its owner;
//! requests parsed elsewhere reach it over glommio's channel mesh as a
//! [`ShardMsg`] that moves the request's buffers (never copies them) and
//! carries a reply channel.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::sync::Semaphore;
use spindle_engine::{
    AppendInfo, BatchCache, CacheStats, LogConfig, PartitionLog, ReadResult, WriteBudget,
};
use tracing::{debug, info, warn};

use crate::catalog::{Catalog, Snapshot};
use crate::config::Config;
use crate::errors;
use crate::fifo_lock::FifoLock;
use crate::group_coordinator::{self, GroupCall, GroupCoordinator, GroupResult};
use crate::metrics::ShardMetrics;
use crate::topic_config;
use crate::transport::limits::ConnLogs;
use crate::transport::listener::HandOff;
use crate::transport::sendfile::SendfilePool;

/// Work for one partition, run on its owner shard.
pub enum PartitionOp {
    Append(BytesMut),
    Read {
        offset: i64,
        max_bytes: u32,
    },
    /// Resolve when the high watermark is past `seen_hw` (at once if it
    /// already is) or after `timeout`.
    Wait {
        timeout: Duration,
        seen_hw: i64,
    },
    /// Log start and high watermark, and the first offset at or after
    /// `timestamp` when one is given.
    Offsets {
        timestamp: Option<i64>,
    },
    /// Open the log (creating its directory) if it is not open.
    Open,
}

pub struct Offsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub for_timestamp: Option<(i64, i64)>,
}

pub enum OpReply {
    Appended(Result<AppendInfo, (i16, String)>),
    Read(Result<ReadResult, (i16, i64, i64)>),
    Waited,
    Offsets(Result<Offsets, i16>),
    Opened(Result<(), i16>),
    /// The partition is not (or no longer) there, or the owner is gone.
    Error(i16),
}

/// What shards send each other.
pub enum ShardMsg {
    /// A connection accepted elsewhere, to be served here.
    Conn(HandOff),
    Op {
        topic: String,
        partition: i32,
        op: PartitionOp,
        reply: flume::Sender<OpReply>,
    },
    /// Work for the group coordinator of this shard (for `partition` of
    /// the offsets topic, where the call names one group).
    Group {
        partition: i32,
        call: GroupCall,
        reply: flume::Sender<GroupResult>,
    },
    /// Delete these partitions' logs (the topic is already gone from the
    /// catalog).
    DropPartitions {
        topic: String,
        partitions: Vec<i32>,
        reply: flume::Sender<()>,
    },
}

/// Live connections per shard, for balancing.
pub struct ConnCounts(pub Vec<AtomicUsize>);

impl ConnCounts {
    pub fn total(&self) -> usize {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

pub struct Shard {
    pub id: u32,
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    /// (host, port) given to clients.
    pub advertised: (String, u16),
    pub sendfile: SendfilePool,
    pub conns: Arc<ConnCounts>,
    logs: RefCell<HashMap<(String, i32), Rc<PartitionLog>>>,
    /// Serialises opening logs so one partition is never opened twice, and
    /// hands itself out in arrival order (see `log`).
    open_lock: FifoLock,
    cache: Rc<BatchCache>,
    write_budget: Rc<WriteBudget>,
    peers: Senders<ShardMsg>,
    pub groups: Rc<GroupCoordinator>,
    /// Counters for `/metrics`, this shard's alone.
    pub metrics: ShardMetrics,
    /// Rate limits on connection-event logs.
    pub conn_logs: ConnLogs,
    /// Request bytes read and not yet answered over this shard's
    /// connections (`--inflight-request-mb`).
    pub request_bytes: Semaphore,
    /// Poisoned logs being reopened.
    pub repairs: crate::repair::Repairs,
    /// Set by `close_all`: no log opens after it.
    closing: std::cell::Cell<bool>,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        advertised: (String, u16),
        sendfile: SendfilePool,
        conns: Arc<ConnCounts>,
        peers: Senders<ShardMsg>,
    ) -> Rc<Shard> {
        let cache = BatchCache::new(config.cache_bytes_per_shard);
        let groups = GroupCoordinator::new(group_settings(&config));
        let metrics = ShardMetrics::default();
        let coordinator = groups.clone();
        metrics.register_collector(Box::new(move |out| coordinator.collect(out)));
        let request_bytes = Semaphore::new(config.inflight_request_bytes_per_shard);
        let write_budget = WriteBudget::new(config.write_behind_bytes_per_shard);
        Rc::new(Shard {
            id,
            config,
            catalog,
            advertised,
            sendfile,
            conns,
            logs: RefCell::new(HashMap::new()),
            open_lock: FifoLock::default(),
            cache,
            write_budget,
            peers,
            groups,
            metrics,
            conn_logs: ConnLogs::default(),
            request_bytes,
            repairs: Default::default(),
            closing: Default::default(),
        })
    }

    /// Runs a group call on the coordinator of `group` (here or over the
    /// mesh).
    pub async fn group_call(self: &Rc<Self>, group: &str, call: GroupCall) -> GroupResult {
        let Some((partition, owner)) = group_coordinator::route(&self.snapshot(), group) else {
            return GroupResult::Code(errors::COORDINATOR_NOT_AVAILABLE);
        };
        self.group_call_on(owner, partition, call).await
    }

    /// Runs a group call on shard `owner`'s coordinator.
    pub async fn group_call_on(
        self: &Rc<Self>,
        owner: u32,
        partition: i32,
        call: GroupCall,
    ) -> GroupResult {
        if owner == self.id {
            return self.groups.call(self, partition, call).await;
        }
        let (reply, rx) = flume::bounded(1);
        let msg = ShardMsg::Group {
            partition,
            call,
            reply,
        };
        if self.peers.send_to(owner as usize, msg).await.is_err() {
            return GroupResult::Code(errors::COORDINATOR_NOT_AVAILABLE);
        }
        rx.recv_async()
            .await
            .unwrap_or(GroupResult::Code(errors::COORDINATOR_NOT_AVAILABLE))
    }

    /// The shards owning an offsets partition: every shard a call about
    /// all groups must reach.
    pub fn coordinator_shards(&self) -> Vec<u32> {
        let snap = self.snapshot();
        let mut owners: Vec<u32> = snap
            .topic(group_coordinator::OFFSETS_TOPIC)
            .map(|t| t.owners.clone())
            .unwrap_or_default();
        owners.sort_unstable();
        owners.dedup();
        owners
    }

    /// The partition logs open on this shard.
    pub fn open_logs(&self) -> Vec<((String, i32), Rc<PartitionLog>)> {
        self.logs
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    pub fn write_budget(&self) -> &WriteBudget {
        &self.write_budget
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.catalog.snapshot()
    }

    pub fn nr_shards(&self) -> usize {
        self.config.shards
    }

    /// The shard owning `topic`/`partition`, if both exist.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<u32> {
        let snap = self.snapshot();
        let t = snap.topic(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.owners.get(p).copied())
    }

    /// Runs `op` on the partition's owner shard (here or over the mesh).
    pub async fn run_op(self: &Rc<Self>, topic: &str, partition: i32, op: PartitionOp) -> OpReply {
        let Some(owner) = self.owner(topic, partition) else {
            return OpReply::Error(errors::UNKNOWN_TOPIC_OR_PARTITION);
        };
        if owner == self.id {
            return self.exec(topic, partition, op).await;
        }
        let (reply, rx) = flume::bounded(1);
        let msg = ShardMsg::Op {
            topic: topic.to_string(),
            partition,
            op,
            reply,
        };
        if self.peers.send_to(owner as usize, msg).await.is_err() {
            return OpReply::Error(errors::NOT_LEADER_OR_FOLLOWER);
        }
        rx.recv_async()
            .await
            .unwrap_or(OpReply::Error(errors::NOT_LEADER_OR_FOLLOWER))
    }

    /// Sends a message to another shard.
    /// On failure (the peer is shutting down) the message comes back when
    /// glommio returns it.
    pub async fn send_to(&self, shard: u32, msg: ShardMsg) -> Result<(), Option<ShardMsg>> {
        use glommio::{GlommioError, ResourceType};
        match self.peers.send_to(shard as usize, msg).await {
            Ok(()) => Ok(()),
            Err(GlommioError::Closed(ResourceType::Channel(m)))
            | Err(GlommioError::WouldBlock(ResourceType::Channel(m))) => Err(Some(m)),
            Err(_) => Err(None),
        }
    }

    /// The log of a partition this shard owns, opened on first use.
    pub async fn log(&self, topic: &str, partition: i32) -> Result<Rc<PartitionLog>, i16> {
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
                Err(errors::KAFKA_STORAGE_ERROR)
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

    /// Runs `op` on a partition owned here.
    pub async fn exec(self: &Rc<Self>, topic: &str, partition: i32, op: PartitionOp) -> OpReply {
        let log = match self.log(topic, partition).await {
            Ok(l) => l,
            Err(code) => {
                return match op {
                    PartitionOp::Open => OpReply::Opened(Err(code)),
                    _ => OpReply::Error(code),
                }
            }
        };
        match op {
            PartitionOp::Append(batches) => {
                let r = log.append(batches).await;
                if log.is_poisoned() {
                    crate::repair::schedule(self, topic, partition, &log);
                }
                OpReply::Appended(r.map_err(|e| (errors::append_error_code(&e), e.to_string())))
            }
            PartitionOp::Read { offset, max_bytes } => {
                OpReply::Read(log.read(offset, max_bytes).await.map_err(|e| {
                    let code = errors::read_error_code(&e);
                    if code != errors::OFFSET_OUT_OF_RANGE {
                        warn!(shard = self.id, topic, partition, error = %e, "read failed");
                    }
                    (code, log.log_start_offset(), log.high_watermark())
                }))
            }
            PartitionOp::Wait { timeout, seen_hw } => {
                if log.high_watermark() <= seen_hw {
                    futures_lite::future::or(log.wait_for_data(), async {
                        glommio::timer::sleep(timeout).await;
                    })
                    .await;
                }
                OpReply::Waited
            }
            PartitionOp::Offsets { timestamp } => {
                let for_timestamp = match timestamp {
                    None => None,
                    Some(ts) => match log.offset_for_timestamp(ts).await {
                        Ok(v) => v,
                        Err(e) => {
                            warn!(shard = self.id, topic, partition, error = %e, "offset for timestamp failed");
                            return OpReply::Offsets(Err(errors::read_error_code(&e)));
                        }
                    },
                };
                OpReply::Offsets(Ok(Offsets {
                    log_start_offset: log.log_start_offset(),
                    high_watermark: log.high_watermark(),
                    for_timestamp,
                }))
            }
            PartitionOp::Open => OpReply::Opened(Ok(())),
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

    /// Serves messages from the other shards.
    pub fn serve_peers(self: &Rc<Self>, mut receivers: Receivers<ShardMsg>) {
        for (_, rx) in receivers.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = rx.recv().await {
                    shard.clone().handle_msg(msg);
                }
            })
            .detach();
        }
    }

    fn handle_msg(self: Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Conn(conn) => crate::transport::connection::spawn(self, conn.bind()),
            ShardMsg::Op {
                topic,
                partition,
                op,
                reply,
            } => {
                // Spawned in arrival order: glommio runs new tasks FIFO, so
                // appends reach the log in the order they were sent.
                glommio::spawn_local(async move {
                    let r = self.exec(&topic, partition, op).await;
                    let _ = reply.send(r);
                })
                .detach();
            }
            ShardMsg::Group {
                partition,
                call,
                reply,
            } => {
                glommio::spawn_local(async move {
                    let r = self.groups.call(&self, partition, call).await;
                    let _ = reply.send(r);
                })
                .detach();
            }
            ShardMsg::DropPartitions {
                topic,
                partitions,
                reply,
            } => {
                glommio::spawn_local(async move {
                    self.drop_partitions(&topic, &partitions).await;
                    let _ = reply.send(());
                })
                .detach();
            }
        }
    }
}

fn group_settings(config: &Config) -> group_coordinator::Settings {
    let g = &config.groups;
    group_coordinator::Settings {
        limits: group_coordinator::group::GroupLimits {
            initial_rebalance_delay: Duration::from_millis(g.initial_rebalance_delay_ms),
            max_size: g.members_max as usize,
        },
        session_timeout_min: Duration::from_millis(g.session_timeout_ms_min),
        session_timeout_max: Duration::from_millis(g.session_timeout_ms_max),
        offsets_retention: Duration::from_millis(g.offsets_retention_ms),
        offsets_retention_check: Duration::from_millis(g.offsets_retention_check_interval_ms),
        rewrite_bytes: g.offsets_rewrite_bytes,
    }
}

/// Removes a directory on a helper thread, never on the reactor.
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
