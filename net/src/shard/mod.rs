//! A shard: one pinned executor, the partition logs it owns, and the
//! cross-shard plumbing. Work on a partition always runs on its owner;
//! requests parsed elsewhere reach it over glommio's channel mesh as a
//! [`ShardMsg`] that moves the request's buffers (never copies them) and
//! carries a reply channel.
//!
//! [`mesh`]: what shards send each other and the routing of partition and
//! group work to its owner; [`ops`]: the partition operations run on the
//! owner; [`logs`]: opening, reopening, dropping and closing the logs a
//! shard owns; [`fifo_lock`]: the open lock, handed out in arrival order;
//! [`repair`]: poisoned logs reopened in the background; [`metrics`]: the
//! shard's report to a scrape.

pub mod fifo_lock;
pub mod logs;
pub mod mesh;
pub mod metrics;
pub mod ops;
pub mod repair;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use glommio::channels::channel_mesh::Senders;
use glommio::sync::Semaphore;
use spindle_engine::{BatchCache, CacheStats, PartitionLog, WriteBudget};

use crate::catalog::{Catalog, Snapshot};
use crate::config::Config;
use crate::group_coordinator::{self, GroupCoordinator};
use crate::metrics::Collectors;
use crate::transport::limits::ConnLogs;
use crate::transport::metrics::ConnectionMetrics;
use crate::transport::sendfile::SendfilePool;
use fifo_lock::FifoLock;
pub use mesh::ShardMsg;
pub use ops::{Offsets, OpReply, PartitionOp};

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
    pub metrics: ConnectionMetrics,
    /// What else reports to `/metrics` from this shard.
    pub collectors: Collectors,
    /// Rate limits on connection-event logs.
    pub conn_logs: ConnLogs,
    /// Request bytes read and not yet answered over this shard's
    /// connections (`--inflight-request-mb`).
    pub request_bytes: Semaphore,
    /// Poisoned logs being reopened.
    pub repairs: repair::Repairs,
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
        let groups =
            GroupCoordinator::new(group_coordinator::Settings::from_config(&config.groups));
        let collectors = Collectors::default();
        let coordinator = groups.clone();
        collectors.register(Box::new(move |out| coordinator.collect(out)));
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
            metrics: ConnectionMetrics::default(),
            collectors,
            conn_logs: ConnLogs::default(),
            request_bytes,
            repairs: Default::default(),
            closing: Default::default(),
        })
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
}
