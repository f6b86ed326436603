//! Topic metadata (topics, partition counts, the shard owning each
//! partition, topic configs) and the producer-id allocator, persisted in
//! `DATA/spindle-meta.json`.
//!
//! One writer: a helper thread owns the file and the state, so no shard
//! thread ever blocks on the write and fsync. Shards send it commands and
//! read immutable snapshots ([`Snapshot`]) published through an `ArcSwap`,
//! a lock-free load on every request.
//!
//! [`topic_config`]: which topic configs exist, their checks, and how they
//! become the engine's `LogConfig`.
//!
//! May import: config and constants; nothing of shards or APIs.

pub mod topic_config;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::constants::{CATALOG_QUEUE_CAPACITY, PRODUCER_ID_BLOCK, TOPIC_NAME_BYTES_MAX};
use crate::errors::{self, ErrorCode};

const META_FILE: &str = "spindle-meta.json";
const META_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    /// Kafka topic id (a UUID), for Metadata v10+ and Fetch v13+.
    pub id: [u8; 16],
    /// Owning shard of each partition, by partition index.
    pub owners: Vec<u32>,
    /// Topic-level configs that differ from the broker defaults.
    pub configs: BTreeMap<String, String>,
    /// The broker's own topic (`__consumer_offsets`): clients read it but
    /// cannot write, delete or grow it.
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    version: u32,
    topics: BTreeMap<String, TopicMeta>,
    /// Producer ids below this may have been handed out.
    producer_id_block_end: i64,
}

/// An immutable view of the topics, shared by all shards.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    pub by_id: HashMap<[u8; 16], String>,
}

impl Snapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }
    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&Arc<TopicMeta>> {
        self.by_id.get(id).and_then(|n| self.topics.get(n))
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CatalogError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("metadata store failed: {0}")]
    Io(String),
    #[error("metadata writer is gone")]
    Gone,
}

enum Command {
    Create {
        name: String,
        partitions: u32,
        configs: BTreeMap<String, String>,
        reply: flume::Sender<Result<Arc<TopicMeta>, CatalogError>>,
    },
    Delete {
        name: String,
        reply: flume::Sender<Result<Arc<TopicMeta>, CatalogError>>,
    },
    AddPartitions {
        name: String,
        total: u32,
        reply: flume::Sender<Result<Arc<TopicMeta>, CatalogError>>,
    },
    ProducerId {
        reply: flume::Sender<Result<i64, CatalogError>>,
    },
    Internal {
        name: String,
        partitions: u32,
        configs: BTreeMap<String, String>,
        reply: flume::Sender<Result<Arc<TopicMeta>, CatalogError>>,
    },
}

/// Handle to the topic metadata: snapshot reads, commands to the writer.
pub struct Catalog {
    snapshot: ArcSwap<Snapshot>,
    tx: flume::Sender<Command>,
}

impl Catalog {
    /// Loads (or creates) the metadata in `data_dir` and starts the writer.
    pub fn open(data_dir: &Path, shards: u32) -> anyhow::Result<Arc<Catalog>> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(META_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let p: Persisted = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                anyhow::ensure!(
                    p.version == META_VERSION,
                    "{}: unknown version {}",
                    path.display(),
                    p.version
                );
                p
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted {
                version: META_VERSION,
                ..Persisted::default()
            },
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        let (tx, rx) = flume::bounded(CATALOG_QUEUE_CAPACITY);
        let catalog = Arc::new(Catalog {
            snapshot: ArcSwap::from_pointee(snapshot_of(&state)),
            tx,
        });
        let mut writer = Writer {
            path,
            next_producer_id: state.producer_id_block_end,
            state,
            shards,
            catalog: Arc::downgrade(&catalog),
        };
        // Reserve a fresh block so ids handed out before a crash are never
        // handed out again.
        writer.reserve_producer_ids()?;
        std::thread::Builder::new()
            .name("spindle-meta".into())
            .spawn(move || writer.run(rx))?;
        Ok(catalog)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(flume::Sender<Result<T, CatalogError>>) -> Command,
    ) -> Result<T, CatalogError> {
        let (reply, rx) = flume::bounded(1);
        self.tx
            .send_async(make(reply))
            .await
            .map_err(|_| CatalogError::Gone)?;
        rx.recv_async().await.map_err(|_| CatalogError::Gone)?
    }

    pub async fn create_topic(
        &self,
        name: String,
        partitions: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, CatalogError> {
        self.ask(|reply| Command::Create {
            name,
            partitions,
            configs,
            reply,
        })
        .await
    }

    pub async fn delete_topic(&self, name: String) -> Result<Arc<TopicMeta>, CatalogError> {
        self.ask(|reply| Command::Delete { name, reply }).await
    }

    pub async fn add_partitions(
        &self,
        name: String,
        total: u32,
    ) -> Result<Arc<TopicMeta>, CatalogError> {
        self.ask(|reply| Command::AddPartitions { name, total, reply })
            .await
    }

    /// The internal topic `name`, created if absent with partition `p` on
    /// shard `p % shards` (so internal partitions spread over every shard
    /// whatever the user topics' load). An existing one is returned as is.
    pub async fn ensure_internal_topic(
        &self,
        name: String,
        partitions: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, CatalogError> {
        self.ask(|reply| Command::Internal {
            name,
            partitions,
            configs,
            reply,
        })
        .await
    }

    /// A producer id never handed out before, durably.
    pub async fn allocate_producer_id(&self) -> Result<i64, CatalogError> {
        self.ask(|reply| Command::ProducerId { reply }).await
    }
}

/// A random topic id: RFC 4122 version 4 (Kafka also reserves the
/// all-zero id).
fn new_topic_id() -> [u8; 16] {
    let mut id: [u8; 16] = rand::random();
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

fn snapshot_of(state: &Persisted) -> Snapshot {
    let topics: BTreeMap<String, Arc<TopicMeta>> = state
        .topics
        .iter()
        .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
        .collect();
    let by_id = topics.values().map(|t| (t.id, t.name.clone())).collect();
    Snapshot { topics, by_id }
}

struct Writer {
    path: PathBuf,
    state: Persisted,
    next_producer_id: i64,
    shards: u32,
    catalog: std::sync::Weak<Catalog>,
}

impl Writer {
    fn run(mut self, rx: flume::Receiver<Command>) {
        while let Ok(cmd) = rx.recv() {
            match cmd {
                Command::Create {
                    name,
                    partitions,
                    configs,
                    reply,
                } => {
                    let _ = reply.send(self.create(name, partitions, configs));
                }
                Command::Delete { name, reply } => {
                    let _ = reply.send(self.delete(&name));
                }
                Command::AddPartitions { name, total, reply } => {
                    let _ = reply.send(self.add_partitions(&name, total));
                }
                Command::ProducerId { reply } => {
                    let _ = reply.send(self.producer_id());
                }
                Command::Internal {
                    name,
                    partitions,
                    configs,
                    reply,
                } => {
                    let _ = reply.send(self.internal(name, partitions, configs));
                }
            }
        }
    }

    /// Partitions per shard over all topics, to place new ones evenly.
    fn load(&self) -> Vec<u64> {
        let mut load = vec![0u64; self.shards as usize];
        for t in self.state.topics.values() {
            for &o in &t.owners {
                if let Some(l) = load.get_mut(o as usize) {
                    *l += 1;
                }
            }
        }
        load
    }

    fn place(&self, n: u32) -> Vec<u32> {
        let mut load = self.load();
        (0..n)
            .map(|_| {
                let (idx, _) = load
                    .iter()
                    .enumerate()
                    .min_by_key(|(i, l)| (**l, *i))
                    .unwrap_or((0, &0));
                load[idx] += 1;
                idx as u32
            })
            .collect()
    }

    fn create(
        &mut self,
        name: String,
        partitions: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, CatalogError> {
        if self.state.topics.contains_key(&name) {
            return Err(CatalogError::TopicExists(name));
        }
        let id = new_topic_id();
        let meta = TopicMeta {
            name: name.clone(),
            id,
            owners: self.place(partitions),
            configs,
            internal: false,
        };
        self.insert(meta)
    }

    fn internal(
        &mut self,
        name: String,
        partitions: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, CatalogError> {
        if let Some(t) = self.state.topics.get(&name) {
            return Ok(Arc::new(t.clone()));
        }
        let meta = TopicMeta {
            name,
            id: new_topic_id(),
            owners: (0..partitions).map(|p| p % self.shards.max(1)).collect(),
            configs,
            internal: true,
        };
        self.insert(meta)
    }

    fn insert(&mut self, meta: TopicMeta) -> Result<Arc<TopicMeta>, CatalogError> {
        let name = meta.name.clone();
        let mut next = self.state.clone();
        next.topics.insert(name, meta.clone());
        self.commit(next)?;
        Ok(Arc::new(meta))
    }

    fn delete(&mut self, name: &str) -> Result<Arc<TopicMeta>, CatalogError> {
        let mut next = self.state.clone();
        let meta = next
            .topics
            .remove(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        self.commit(next)?;
        Ok(Arc::new(meta))
    }

    fn add_partitions(&mut self, name: &str, total: u32) -> Result<Arc<TopicMeta>, CatalogError> {
        let current = self
            .state
            .topics
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?
            .owners
            .len() as u32;
        if total <= current {
            return Err(CatalogError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the count can only grow"
            )));
        }
        let extra = self.place(total - current);
        let mut next = self.state.clone();
        let meta = next
            .topics
            .get_mut(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.to_string()))?;
        meta.owners.extend(extra);
        let meta = meta.clone();
        self.commit(next)?;
        Ok(Arc::new(meta))
    }

    fn producer_id(&mut self) -> Result<i64, CatalogError> {
        if self.next_producer_id >= self.state.producer_id_block_end {
            self.reserve_producer_ids()
                .map_err(|e| CatalogError::Io(e.to_string()))?;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Ok(id)
    }

    fn reserve_producer_ids(&mut self) -> std::io::Result<()> {
        let mut next = self.state.clone();
        next.producer_id_block_end = self.next_producer_id + PRODUCER_ID_BLOCK;
        self.commit(next)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Writes `next` durably (temp file, fsync, rename, fsync of the
    /// directory), then makes it the state and publishes its snapshot.
    fn commit(&mut self, next: Persisted) -> Result<(), CatalogError> {
        let io = |e: std::io::Error| CatalogError::Io(e.to_string());
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| CatalogError::Io(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        self.state = next;
        if let Some(c) = self.catalog.upgrade() {
            c.snapshot.store(Arc::new(snapshot_of(&self.state)));
        }
        Ok(())
    }
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name longer than {TOPIC_NAME_BYTES_MAX} bytes"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "topic name {name:?} has characters outside [a-zA-Z0-9._-]"
        ));
    }
    Ok(())
}

/// The Kafka error code of a catalog failure.
pub fn error_code(e: &CatalogError) -> ErrorCode {
    match e {
        CatalogError::TopicExists(_) => errors::TOPIC_ALREADY_EXISTS,
        CatalogError::UnknownTopic(_) => errors::UNKNOWN_TOPIC_OR_PARTITION,
        CatalogError::InvalidPartitions(_) => errors::INVALID_PARTITIONS,
        CatalogError::Io(_) | CatalogError::Gone => errors::KAFKA_STORAGE_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path(), 2).unwrap();
        let t = block_on(c.create_topic("a".into(), 3, BTreeMap::new())).unwrap();
        assert_eq!(t.owners, vec![0, 1, 0]);
        let b = block_on(c.create_topic("b".into(), 1, BTreeMap::new())).unwrap();
        assert_eq!(b.owners, vec![1]);
        assert!(matches!(
            block_on(c.create_topic("a".into(), 1, BTreeMap::new())),
            Err(CatalogError::TopicExists(_))
        ));
        let grown = block_on(c.add_partitions("b".into(), 3)).unwrap();
        assert_eq!(grown.owners.len(), 3);
        assert!(block_on(c.add_partitions("b".into(), 2)).is_err());
        let p1 = block_on(c.allocate_producer_id()).unwrap();
        let p2 = block_on(c.allocate_producer_id()).unwrap();
        assert!(p2 > p1);
        block_on(c.delete_topic("b".into())).unwrap();
        assert!(c.snapshot().topic("a").is_some());
        drop(c);

        let c = Catalog::open(dir.path(), 2).unwrap();
        let snap = c.snapshot();
        assert_eq!(snap.topic("a").unwrap().as_ref(), t.as_ref());
        assert!(snap.topic("b").is_none());
        assert_eq!(snap.topic_by_id(&t.id).unwrap().name, "a");
        let p3 = block_on(c.allocate_producer_id()).unwrap();
        assert!(p3 > p2, "ids are never reused across restarts");
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", "ü"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }
}
