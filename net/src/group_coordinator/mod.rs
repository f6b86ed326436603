//! The group coordinator (classic protocol): consumer groups and their
//! committed offsets.
//!
//! Every group lives on one shard: the owner of partition
//! `hash(group id) % P` of the internal topic `__consumer_offsets` (Kafka's
//! rule, with Java's `String.hashCode`). Its state is touched only there;
//! requests parsed on other shards reach it as a [`GroupCall`] over the
//! shard mesh. Committed offsets and group metadata are records of that
//! partition, in Kafka's formats ([`records`]): an OffsetCommit is
//! answered once its records are durable under the flush mode, and a
//! restart replays the partition to rebuild every group.
//!
//! The log has no compaction: when it has grown well past the live state,
//! the coordinator appends the live state again and deletes the whole
//! segments below it ([`Store`]). Writers of one partition go through a
//! fair gate: commits share it, rewrites and deletions take it whole, so
//! no record of a deletion can land between a commit's append and its
//! effect in memory.

pub mod group;
pub mod records;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::sync::Semaphore;
use spindle_codec::records::{for_each_record, BatchWriter};
use spindle_engine::{PartitionLog, ReadChunk};
use tracing::{debug, info, warn};

use crate::catalog::Snapshot;
use crate::constants::{
    GROUP_TICK_MS, OFFSETS_LOAD_READ_BYTES, OFFSETS_WRITES_IN_FLIGHT, OFFSET_METADATA_BYTES_MAX,
};
use crate::errors;
use crate::metrics::{Family, Kind, Sample};
use crate::shard::Shard;
use group::{Group, GroupLimits, GroupState, JoinOutcome, JoinParams, Now, Persist, Reply};
use group::{SyncOutcome, SyncParams};
use records::{GroupValue, Key, OffsetValue};

/// Kafka's name for the internal topic of committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Coordinator settings from the broker config.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub limits: GroupLimits,
    pub session_timeout_min: Duration,
    pub session_timeout_max: Duration,
    /// offsets.retention.minutes
    pub offsets_retention: Duration,
    pub offsets_retention_check: Duration,
    /// Growth of an offsets partition that triggers a rewrite.
    pub rewrite_bytes: u64,
}

/// Java's `String.hashCode` of the UTF-16 code units, as Kafka hashes
/// group ids to partitions.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The offsets partition of a group and the shard owning it.
pub fn route(snap: &Snapshot, group_id: &str) -> Option<(i32, u32)> {
    let t = snap.topic(OFFSETS_TOPIC)?;
    let n = t.owners.len() as i32;
    if n == 0 {
        return None;
    }
    // Kafka's Utils.abs: i32::MIN maps to 0.
    let h = java_hash(group_id);
    let p = if h == i32::MIN { 0 } else { h.abs() % n };
    Some((p, t.owners[p as usize]))
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    }
}

#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CommitTopic {
    pub name: String,
    pub partitions: Vec<CommitPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Debug, Clone)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct Described {
    pub group_id: String,
    /// `None`: no such group.
    pub state: Option<&'static str>,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone)]
pub struct Listed {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// Work for the coordinator of a group (or, for the calls naming none,
/// for every group on the shard it is sent to).
#[derive(Debug)]
pub enum GroupCall {
    Join {
        group: String,
        params: JoinParams,
    },
    Sync {
        group: String,
        params: SyncParams,
    },
    Heartbeat {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    Leave {
        group: String,
        members: Vec<(String, Option<String>)>,
    },
    Commit {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        topics: Vec<CommitTopic>,
    },
    /// `topics: None`: every committed offset of the group.
    Fetch {
        group: String,
        topics: Option<Vec<(String, Vec<i32>)>>,
    },
    Describe {
        groups: Vec<String>,
    },
    List,
    Delete {
        groups: Vec<String>,
    },
    OffsetDelete {
        group: String,
        topics: Vec<(String, Vec<i32>)>,
    },
    /// A deleted topic: drop every group's offsets of it.
    DropTopic {
        topic: String,
    },
}

#[derive(Debug)]
pub enum GroupResult {
    Join(JoinOutcome),
    Sync(SyncOutcome),
    Code(i16),
    /// Group-level code, then a code per member asked about.
    Leave(i16, Vec<i16>),
    /// A code per partition, in request order.
    Commit(Vec<Vec<i16>>),
    /// Group-level code and the offsets by topic.
    Fetch(i16, Vec<(String, Vec<FetchedPartition>)>),
    Describe(Vec<Described>),
    List(Vec<Listed>),
    /// A code per group, in request order.
    Delete(Vec<i16>),
    /// Group-level code, then per topic a code per partition.
    OffsetDelete(i16, Vec<Vec<i16>>),
    Done,
}

/// A committed offset in memory, with the log offset of the record that
/// set it (a commit only takes effect if its record is newer).
#[derive(Debug, Clone)]
struct Committed {
    value: OffsetValue,
    record_offset: i64,
}

struct Entry {
    group: Group,
    /// The offsets partition holding the group.
    partition: i32,
    offsets: HashMap<(String, i32), Committed>,
}

impl Entry {
    fn removable(&self) -> bool {
        self.group.state == GroupState::Empty
            && self.group.members.is_empty()
            && self.offsets.is_empty()
    }
}

/// One offsets partition owned here: its write gate and growth since the
/// live state was last rewritten.
struct Store {
    gate: Rc<Semaphore>,
    bytes_since_rewrite: Cell<u64>,
    live_bytes: Cell<u64>,
    rewriting: Cell<bool>,
}

pub struct GroupCoordinator {
    settings: Settings,
    entries: RefCell<HashMap<String, Entry>>,
    stores: RefCell<HashMap<i32, Rc<Store>>>,
    loaded: Cell<bool>,
}

fn storage_code(code: i16) -> i16 {
    // Kafka answers a failed write of its offsets log so that clients
    // find the coordinator again and retry.
    match code {
        errors::MESSAGE_TOO_LARGE => errors::INVALID_COMMIT_OFFSET_SIZE,
        _ => errors::COORDINATOR_NOT_AVAILABLE,
    }
}

impl GroupCoordinator {
    pub fn new(settings: Settings) -> Rc<GroupCoordinator> {
        Rc::new(GroupCoordinator {
            settings,
            entries: RefCell::new(HashMap::new()),
            stores: RefCell::new(HashMap::new()),
            loaded: Cell::new(false),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replays every offsets partition this shard owns, then serves.
    pub async fn load(self: &Rc<Self>, shard: &Rc<Shard>) {
        let snap = shard.snapshot();
        let owned: Vec<i32> = snap
            .topic(OFFSETS_TOPIC)
            .map(|t| {
                t.owners
                    .iter()
                    .enumerate()
                    .filter(|(_, &o)| o == shard.id)
                    .map(|(p, _)| p as i32)
                    .collect()
            })
            .unwrap_or_default();
        for p in owned {
            let store = Rc::new(Store {
                gate: Rc::new(Semaphore::new(OFFSETS_WRITES_IN_FLIGHT)),
                bytes_since_rewrite: Cell::new(0),
                live_bytes: Cell::new(0),
                rewriting: Cell::new(false),
            });
            self.stores.borrow_mut().insert(p, store.clone());
            match shard.log(OFFSETS_TOPIC, p).await {
                Ok(log) => {
                    if let Err(e) = self.replay(p, &log, &store).await {
                        warn!(shard = shard.id, partition = p, error = %e, "offsets replay stopped early");
                    }
                }
                Err(code) => {
                    warn!(
                        shard = shard.id,
                        partition = p,
                        code,
                        "offsets partition did not open"
                    )
                }
            }
        }
        let groups = self.entries.borrow().len();
        if groups > 0 {
            info!(shard = shard.id, groups, "consumer groups loaded");
        }
        self.loaded.set(true);
    }

    async fn replay(
        &self,
        partition: i32,
        log: &PartitionLog,
        store: &Store,
    ) -> Result<(), String> {
        let mut next = log.log_start_offset();
        let hw = log.high_watermark();
        let mut bytes = 0u64;
        let mut groups: HashMap<String, (GroupValue, i64)> = HashMap::new();
        let mut removed_groups: HashMap<String, i64> = HashMap::new();
        let mut offsets: HashMap<(String, String, i32), Committed> = HashMap::new();
        while next < hw {
            let r = log
                .read_in_memory(next, OFFSETS_LOAD_READ_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            if r.chunks.is_empty() {
                break;
            }
            let before = next;
            for c in &r.chunks {
                let ReadChunk::Memory(b) = c else {
                    return Err("file range from an in-memory read".into());
                };
                bytes += b.len() as u64;
                for_each_record(b, |rec| {
                    next = next.max(rec.offset + 1);
                    apply_record(rec, &mut groups, &mut removed_groups, &mut offsets);
                })
                .map_err(|e| e.to_string())?;
            }
            if next <= before {
                return Err(format!("no progress reading at offset {before}"));
            }
        }
        store.live_bytes.set(bytes);
        let now = now();
        let limits = self.settings.limits;
        let mut entries = self.entries.borrow_mut();
        for (id, (value, _)) in groups {
            let group = Group::restore(id.clone(), value, limits, now);
            entries.insert(
                id,
                Entry {
                    group,
                    partition,
                    offsets: HashMap::new(),
                },
            );
        }
        for ((gid, topic, p), c) in offsets {
            let e = entries.entry(gid.clone()).or_insert_with(|| Entry {
                group: Group::new(gid.clone(), limits, now),
                partition,
                offsets: HashMap::new(),
            });
            e.offsets.insert((topic, p), c);
        }
        Ok(())
    }

    fn store(&self, partition: i32) -> Option<Rc<Store>> {
        self.stores.borrow().get(&partition).cloned()
    }

    /// Runs `call` here, where `partition` (of the group it names) lives.
    pub async fn call(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        call: GroupCall,
    ) -> GroupResult {
        if !self.loaded.get() {
            return loading(&call);
        }
        match call {
            GroupCall::Join { group, params } => {
                GroupResult::Join(self.join(shard, partition, group, params).await)
            }
            GroupCall::Sync { group, params } => {
                GroupResult::Sync(self.sync(shard, group, params).await)
            }
            GroupCall::Heartbeat {
                group,
                member_id,
                instance_id,
                generation,
            } => {
                let code = match self.entries.borrow_mut().get_mut(&group) {
                    Some(e) => {
                        e.group
                            .heartbeat(&member_id, instance_id.as_deref(), generation, now())
                    }
                    None => errors::UNKNOWN_MEMBER_ID,
                };
                GroupResult::Code(code)
            }
            GroupCall::Leave { group, members } => {
                let codes = match self.entries.borrow_mut().get_mut(&group) {
                    Some(e) => e.group.leave(&members, now()),
                    None => vec![errors::UNKNOWN_MEMBER_ID; members.len()],
                };
                self.after_change(shard, &group);
                GroupResult::Leave(errors::NONE, codes)
            }
            GroupCall::Commit {
                group,
                member_id,
                instance_id,
                generation,
                topics,
            } => GroupResult::Commit(
                self.commit(
                    shard,
                    partition,
                    group,
                    member_id,
                    instance_id,
                    generation,
                    topics,
                )
                .await,
            ),
            GroupCall::Fetch { group, topics } => self.fetch(&group, topics),
            GroupCall::Describe { groups } => {
                GroupResult::Describe(groups.iter().map(|g| self.describe(g)).collect())
            }
            GroupCall::List => GroupResult::List(self.list()),
            GroupCall::Delete { groups } => {
                let mut codes = Vec::with_capacity(groups.len());
                for g in &groups {
                    codes.push(self.delete_group(shard, g).await);
                }
                GroupResult::Delete(codes)
            }
            GroupCall::OffsetDelete { group, topics } => {
                self.offset_delete(shard, &group, topics).await
            }
            GroupCall::DropTopic { topic } => {
                self.drop_topic(shard, &topic).await;
                GroupResult::Done
            }
        }
    }

    async fn join(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        group: String,
        params: JoinParams,
    ) -> JoinOutcome {
        let s = &self.settings;
        if group.is_empty() {
            return JoinOutcome::error(errors::INVALID_GROUP_ID, &params.member_id);
        }
        if params.session_timeout < s.session_timeout_min
            || params.session_timeout > s.session_timeout_max
        {
            return JoinOutcome::error(errors::INVALID_SESSION_TIMEOUT, &params.member_id);
        }
        let (tx, rx) = flume::bounded(1);
        let member_id = params.member_id.clone();
        let reply = {
            let mut entries = self.entries.borrow_mut();
            if !entries.contains_key(&group) {
                if !member_id.is_empty() {
                    return JoinOutcome::error(errors::UNKNOWN_MEMBER_ID, &member_id);
                }
                entries.insert(
                    group.clone(),
                    Entry {
                        group: Group::new(group.clone(), s.limits, now()),
                        partition,
                        offsets: HashMap::new(),
                    },
                );
            }
            let e = entries.get_mut(&group).expect("inserted above");
            e.group.join(params, tx, now())
        };
        self.after_change(shard, &group);
        match reply {
            Reply::Now(o) => o,
            Reply::Later => rx
                .recv_async()
                .await
                .unwrap_or_else(|_| JoinOutcome::error(errors::REBALANCE_IN_PROGRESS, &member_id)),
        }
    }

    async fn sync(self: &Rc<Self>, shard: &Rc<Shard>, group: String, p: SyncParams) -> SyncOutcome {
        let (tx, rx) = flume::bounded(1);
        let reply = match self.entries.borrow_mut().get_mut(&group) {
            Some(e) => e.group.sync(p, tx, now()),
            None => Reply::Now(SyncOutcome::error(errors::UNKNOWN_MEMBER_ID)),
        };
        self.after_change(shard, &group);
        match reply {
            Reply::Now(o) => o,
            Reply::Later => rx
                .recv_async()
                .await
                .unwrap_or_else(|_| SyncOutcome::error(errors::REBALANCE_IN_PROGRESS)),
        }
    }

    /// Writes what the group now owes the log, in the background; an
    /// assignment write then answers the waiting SyncGroups.
    fn after_change(self: &Rc<Self>, shard: &Rc<Shard>, group: &str) {
        let persist = match self.entries.borrow_mut().get_mut(group) {
            Some(e) => e.group.take_persist(),
            None => None,
        };
        let Some(persist) = persist else { return };
        let (me, shard, group) = (self.clone(), shard.clone(), group.to_string());
        glommio::spawn_local(async move {
            let code = match me.write_group(&shard, &group).await {
                Ok(()) => errors::NONE,
                Err(code) => code,
            };
            if let Persist::Assignment(generation) = persist {
                if let Some(e) = me.entries.borrow_mut().get_mut(&group) {
                    e.group.sync_persisted(generation, code, now());
                }
                me.after_change(&shard, &group);
            }
        })
        .detach();
    }

    /// Appends the group's metadata as it is once the write may start.
    async fn write_group(self: &Rc<Self>, shard: &Rc<Shard>, group: &str) -> Result<(), i16> {
        let partition = self
            .entries
            .borrow()
            .get(group)
            .map(|e| e.partition)
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let (store, log) = self.store_and_log(shard, partition).await?;
        let _permit = store
            .gate
            .acquire_permit(1)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        // Captured after the gate, right before the append call: records of
        // one group reach the log in the order their states were taken.
        let value = match self.entries.borrow().get(group) {
            Some(e) => records::encode_group(&e.group.value()),
            None => return Ok(()),
        };
        let mut w = BatchWriter::new(now().wall_ms);
        w.push(
            &records::encode_key(&Key::Group {
                group: group.to_string(),
            }),
            Some(&value),
        );
        self.append(shard, &store, &log, w.finish())
            .await
            .map(|_| ())
    }

    async fn store_and_log(
        &self,
        shard: &Rc<Shard>,
        partition: i32,
    ) -> Result<(Rc<Store>, Rc<PartitionLog>), i16> {
        let store = self
            .store(partition)
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let log = shard
            .log(OFFSETS_TOPIC, partition)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        Ok((store, log))
    }

    /// Appends records (durable under the flush mode when it returns) and
    /// returns the first offset; may start a rewrite of the live state.
    async fn append(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        store: &Rc<Store>,
        log: &Rc<PartitionLog>,
        batch: BytesMut,
    ) -> Result<i64, i16> {
        let len = batch.len() as u64;
        match log.append(batch).await {
            Ok(info) => {
                store
                    .bytes_since_rewrite
                    .set(store.bytes_since_rewrite.get() + len);
                self.maybe_rewrite(shard, store);
                Ok(info.base_offset)
            }
            Err(e) => {
                warn!(shard = shard.id, error = %e, "write to the offsets log failed");
                Err(storage_code(errors::append_error_code(&e)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        topics: Vec<CommitTopic>,
    ) -> Vec<Vec<i16>> {
        let all = |code: i16| -> Vec<Vec<i16>> {
            topics
                .iter()
                .map(|t| vec![code; t.partitions.len()])
                .collect()
        };
        if group.is_empty() {
            return all(errors::INVALID_GROUP_ID);
        }
        let now = now();
        {
            let mut entries = self.entries.borrow_mut();
            if !entries.contains_key(&group) {
                if generation >= 0 {
                    return all(errors::ILLEGAL_GENERATION);
                }
                entries.insert(
                    group.clone(),
                    Entry {
                        group: Group::new(group.clone(), self.settings.limits, now),
                        partition,
                        offsets: HashMap::new(),
                    },
                );
            }
            let e = entries.get_mut(&group).expect("inserted above");
            if let Err(code) =
                e.group
                    .check_commit(&member_id, instance_id.as_deref(), generation, now)
            {
                return all(code);
            }
        }
        let snap = shard.snapshot();
        let mut codes: Vec<Vec<i16>> = Vec::with_capacity(topics.len());
        let mut w = BatchWriter::new(now.wall_ms);
        let mut written: Vec<(String, i32, OffsetValue, usize)> = Vec::new();
        for t in &topics {
            let known = snap.topic(&t.name).map(|m| m.owners.len() as i32);
            let mut tc = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let meta = p.metadata.clone().unwrap_or_default();
                let code = if !known.is_some_and(|n| (0..n).contains(&p.partition)) {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                } else if meta.len() > OFFSET_METADATA_BYTES_MAX {
                    errors::OFFSET_METADATA_TOO_LARGE
                } else {
                    let value = OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: meta,
                        commit_timestamp_ms: now.wall_ms,
                    };
                    let key = Key::Offset {
                        group: group.clone(),
                        topic: t.name.clone(),
                        partition: p.partition,
                    };
                    w.push(
                        &records::encode_key(&key),
                        Some(&records::encode_offset(&value)),
                    );
                    written.push((t.name.clone(), p.partition, value, w.count() as usize - 1));
                    errors::NONE
                };
                tc.push(code);
            }
            codes.push(tc);
        }
        if written.is_empty() {
            return codes;
        }
        let result = self.write_commit(shard, partition, w.finish()).await;
        match result {
            Ok(base) => {
                let mut entries = self.entries.borrow_mut();
                let e = entries.entry(group.clone()).or_insert_with(|| Entry {
                    group: Group::new(group.clone(), self.settings.limits, now),
                    partition,
                    offsets: HashMap::new(),
                });
                for (topic, p, value, i) in written {
                    let record_offset = base + i as i64;
                    let slot = e.offsets.entry((topic, p));
                    match slot {
                        std::collections::hash_map::Entry::Occupied(mut o) => {
                            if o.get().record_offset < record_offset {
                                o.insert(Committed {
                                    value,
                                    record_offset,
                                });
                            }
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(Committed {
                                value,
                                record_offset,
                            });
                        }
                    }
                }
            }
            Err(code) => {
                for tc in &mut codes {
                    for c in tc.iter_mut().filter(|c| **c == errors::NONE) {
                        *c = code;
                    }
                }
            }
        }
        codes
    }

    async fn write_commit(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        batch: BytesMut,
    ) -> Result<i64, i16> {
        let (store, log) = self.store_and_log(shard, partition).await?;
        let _permit = store
            .gate
            .acquire_permit(1)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        self.append(shard, &store, &log, batch).await
    }

    fn fetch(&self, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> GroupResult {
        let entries = self.entries.borrow();
        let e = entries.get(group);
        let get = |t: &str, p: i32| -> FetchedPartition {
            match e.and_then(|e| e.offsets.get(&(t.to_string(), p))) {
                Some(c) => FetchedPartition {
                    partition: p,
                    offset: c.value.offset,
                    leader_epoch: c.value.leader_epoch,
                    metadata: c.value.metadata.clone(),
                },
                None => FetchedPartition {
                    partition: p,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                },
            }
        };
        let out = match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.iter().map(|&p| get(&t, p)).collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> =
                    std::collections::BTreeMap::new();
                if let Some(e) = e {
                    for (t, p) in e.offsets.keys() {
                        by_topic.entry(t.clone()).or_default().push(*p);
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort_unstable();
                        let parts = ps.iter().map(|&p| get(&t, p)).collect();
                        (t, parts)
                    })
                    .collect()
            }
        };
        GroupResult::Fetch(errors::NONE, out)
    }

    fn describe(&self, group: &str) -> Described {
        let entries = self.entries.borrow();
        let Some(e) = entries.get(group) else {
            return Described {
                group_id: group.to_string(),
                state: None,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let g = &e.group;
        let protocol = g.protocol.clone().unwrap_or_default();
        // Kafka shows member metadata and assignments only once they mean
        // something: in Stable (and its assignments only there).
        let stable = g.state == GroupState::Stable;
        Described {
            group_id: group.to_string(),
            state: Some(g.state.name()),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    fn list(&self) -> Vec<Listed> {
        let mut v: Vec<Listed> = self
            .entries
            .borrow()
            .values()
            .map(|e| Listed {
                group_id: e.group.id.clone(),
                protocol_type: e.group.protocol_type.clone().unwrap_or_default(),
                state: e.group.state.name(),
            })
            .collect();
        v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        v
    }

    /// Appends tombstones for `keys` with the partition's gate held whole,
    /// then runs `apply` (which removes them from memory) before anyone
    /// else writes.
    async fn write_exclusive(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        keys: Vec<Key>,
        apply: impl FnOnce(&mut HashMap<String, Entry>),
    ) -> Result<(), i16> {
        let (store, log) = self.store_and_log(shard, partition).await?;
        let _permit = store
            .gate
            .acquire_permit(OFFSETS_WRITES_IN_FLIGHT)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        if !keys.is_empty() {
            let mut w = BatchWriter::new(now().wall_ms);
            for k in &keys {
                w.push(&records::encode_key(k), None);
            }
            self.append(shard, &store, &log, w.finish()).await?;
        }
        apply(&mut self.entries.borrow_mut());
        Ok(())
    }

    async fn delete_group(self: &Rc<Self>, shard: &Rc<Shard>, group: &str) -> i16 {
        let (partition, keys) = {
            let entries = self.entries.borrow();
            let Some(e) = entries.get(group) else {
                return errors::GROUP_ID_NOT_FOUND;
            };
            if e.group.state != GroupState::Empty {
                return errors::NON_EMPTY_GROUP;
            }
            let mut keys = tombstones_of(group, e, |_| true);
            keys.push(Key::Group {
                group: group.to_string(),
            });
            (e.partition, keys)
        };
        let g = group.to_string();
        let r = self
            .write_exclusive(shard, partition, keys, |entries| {
                // Still empty? A member may have joined while we waited.
                if entries
                    .get(&g)
                    .is_some_and(|e| e.group.state == GroupState::Empty)
                {
                    entries.remove(&g);
                }
            })
            .await;
        match r {
            Ok(()) if self.entries.borrow().contains_key(group) => errors::NON_EMPTY_GROUP,
            Ok(()) => {
                info!(shard = shard.id, group, "deleted consumer group");
                errors::NONE
            }
            Err(code) => code,
        }
    }

    async fn offset_delete(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        group: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> GroupResult {
        let (partition, codes, keys) = {
            let entries = self.entries.borrow();
            let Some(e) = entries.get(group) else {
                return GroupResult::OffsetDelete(errors::GROUP_ID_NOT_FOUND, Vec::new());
            };
            let mut keys = Vec::new();
            let mut codes = Vec::with_capacity(topics.len());
            for (t, ps) in &topics {
                if e.group.subscribes_to(t) {
                    codes.push(vec![errors::GROUP_SUBSCRIBED_TO_TOPIC; ps.len()]);
                    continue;
                }
                for &p in ps {
                    if e.offsets.contains_key(&(t.clone(), p)) {
                        keys.push(Key::Offset {
                            group: group.to_string(),
                            topic: t.clone(),
                            partition: p,
                        });
                    }
                }
                codes.push(vec![errors::NONE; ps.len()]);
            }
            (e.partition, codes, keys)
        };
        let g = group.to_string();
        let doomed = keys.clone();
        let r = self
            .write_exclusive(shard, partition, keys, |entries| {
                if let Some(e) = entries.get_mut(&g) {
                    for k in &doomed {
                        if let Key::Offset {
                            topic, partition, ..
                        } = k
                        {
                            e.offsets.remove(&(topic.clone(), *partition));
                        }
                    }
                }
            })
            .await;
        match r {
            Ok(()) => GroupResult::OffsetDelete(errors::NONE, codes),
            Err(code) => GroupResult::OffsetDelete(code, codes),
        }
    }

    /// Drops every group's offsets of a deleted topic.
    async fn drop_topic(self: &Rc<Self>, shard: &Rc<Shard>, topic: &str) {
        let mut by_partition: HashMap<i32, Vec<Key>> = HashMap::new();
        for (gid, e) in self.entries.borrow().iter() {
            let keys = tombstones_of(gid, e, |t| t == topic);
            if !keys.is_empty() {
                by_partition.entry(e.partition).or_default().extend(keys);
            }
        }
        for (partition, keys) in by_partition {
            let t = topic.to_string();
            let n = keys.len();
            let r = self
                .write_exclusive(shard, partition, keys, |entries| {
                    for e in entries.values_mut() {
                        e.offsets.retain(|(tt, _), _| *tt != t);
                    }
                })
                .await;
            match r {
                Ok(()) => info!(
                    shard = shard.id,
                    topic,
                    offsets = n,
                    "dropped committed offsets of deleted topic"
                ),
                Err(code) => warn!(
                    shard = shard.id,
                    topic, code, "could not drop offsets of deleted topic"
                ),
            }
        }
    }

    /// Session expiry and rebalance deadlines, on every tick.
    fn tick(self: &Rc<Self>, shard: &Rc<Shard>) {
        let now = now();
        let ids: Vec<String> = {
            let mut entries = self.entries.borrow_mut();
            entries
                .iter_mut()
                .filter(|(_, e)| e.group.state != GroupState::Empty || !e.group.members.is_empty())
                .map(|(id, e)| {
                    e.group.tick(now);
                    id.clone()
                })
                .collect()
        };
        for id in ids {
            self.after_change(shard, &id);
        }
    }

    /// Expires the offsets of groups that have been empty for
    /// offsets.retention.minutes (of standalone committers: since their
    /// last commit), and forgets groups with nothing left.
    async fn expire_offsets(self: &Rc<Self>, shard: &Rc<Shard>) {
        let now = now();
        let retention_ms = self.settings.offsets_retention.as_millis() as i64;
        let mut by_partition: HashMap<i32, Vec<(String, Vec<Key>)>> = HashMap::new();
        for (gid, e) in self.entries.borrow().iter() {
            if e.group.state != GroupState::Empty {
                continue;
            }
            let since = e
                .group
                .protocol_type
                .as_ref()
                .map(|_| e.group.state_since_ms);
            let mut keys: Vec<Key> = e
                .offsets
                .iter()
                .filter(|(_, c)| {
                    let base = since.unwrap_or(0).max(c.value.commit_timestamp_ms);
                    now.wall_ms - base >= retention_ms
                })
                .map(|((t, p), _)| Key::Offset {
                    group: gid.clone(),
                    topic: t.clone(),
                    partition: *p,
                })
                .collect();
            let all_go = keys.len() == e.offsets.len();
            if all_go && e.group.members.is_empty() {
                keys.push(Key::Group { group: gid.clone() });
            }
            if !keys.is_empty() {
                by_partition
                    .entry(e.partition)
                    .or_default()
                    .push((gid.clone(), keys));
            }
        }
        for (partition, groups) in by_partition {
            let keys: Vec<Key> = groups.iter().flat_map(|(_, k)| k.clone()).collect();
            let n = keys.len();
            let r = self
                .write_exclusive(shard, partition, keys, |entries| {
                    for (gid, ks) in &groups {
                        let Some(e) = entries.get_mut(gid) else {
                            continue;
                        };
                        for k in ks {
                            if let Key::Offset {
                                topic, partition, ..
                            } = k
                            {
                                e.offsets.remove(&(topic.clone(), *partition));
                            }
                        }
                        if e.removable() {
                            entries.remove(gid);
                        }
                    }
                })
                .await;
            match r {
                Ok(()) => debug!(
                    shard = shard.id,
                    partition,
                    records = n,
                    "expired committed offsets"
                ),
                Err(code) => warn!(shard = shard.id, partition, code, "offset expiry failed"),
            }
        }
    }

    /// Rewrites the live state of a partition once the log has grown well
    /// past it, then deletes the segments wholly below the rewrite.
    fn maybe_rewrite(self: &Rc<Self>, shard: &Rc<Shard>, store: &Rc<Store>) {
        let grown = store.bytes_since_rewrite.get();
        if store.rewriting.get()
            || grown < self.settings.rewrite_bytes.max(2 * store.live_bytes.get())
        {
            return;
        }
        let Some(partition) = self
            .stores
            .borrow()
            .iter()
            .find(|(_, s)| Rc::ptr_eq(s, store))
            .map(|(p, _)| *p)
        else {
            return;
        };
        store.rewriting.set(true);
        let (me, shard, store) = (self.clone(), shard.clone(), store.clone());
        glommio::spawn_local(async move {
            if let Err(code) = me.rewrite(&shard, partition, &store).await {
                warn!(
                    shard = shard.id,
                    partition, code, "rewrite of the offsets log failed"
                );
            }
            store.rewriting.set(false);
        })
        .detach();
    }

    async fn rewrite(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        store: &Rc<Store>,
    ) -> Result<(), i16> {
        let log = shard
            .log(OFFSETS_TOPIC, partition)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        let _permit = store
            .gate
            .acquire_permit(OFFSETS_WRITES_IN_FLIGHT)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        let batches = self.live_state(partition);
        let live = batches.len() as u64;
        let below = if batches.is_empty() {
            log.log_end_offset()
        } else {
            log.append(batches)
                .await
                .map_err(|e| storage_code(errors::append_error_code(&e)))?
                .base_offset
        };
        let deleted = log
            .delete_segments_below(below)
            .await
            .map_err(|e| storage_code(errors::append_error_code(&e)))?;
        store.bytes_since_rewrite.set(0);
        store.live_bytes.set(live);
        info!(
            shard = shard.id,
            partition,
            live_bytes = live,
            segments_deleted = deleted,
            "rewrote the live state of an offsets partition"
        );
        Ok(())
    }

    /// Every live record of a partition, as concatenated batches.
    fn live_state(&self, partition: i32) -> BytesMut {
        let mut out = BytesMut::new();
        let mut w = BatchWriter::new(now().wall_ms);
        let flush = |w: &mut BatchWriter, out: &mut BytesMut| {
            if !w.is_empty() {
                let full = std::mem::replace(w, BatchWriter::new(now().wall_ms));
                out.extend_from_slice(&full.finish());
            }
        };
        for (gid, e) in self.entries.borrow().iter() {
            if e.partition != partition {
                continue;
            }
            if e.group.protocol_type.is_some() {
                let k = records::encode_key(&Key::Group { group: gid.clone() });
                w.push(&k, Some(&records::encode_group(&e.group.value())));
            }
            for ((t, p), c) in &e.offsets {
                let k = records::encode_key(&Key::Offset {
                    group: gid.clone(),
                    topic: t.clone(),
                    partition: *p,
                });
                w.push(&k, Some(&records::encode_offset(&c.value)));
                if w.len() >= OFFSETS_LOAD_READ_BYTES as usize / 2 {
                    flush(&mut w, &mut out);
                }
            }
        }
        flush(&mut w, &mut out);
        out
    }

    /// Metrics of the groups coordinated here, for `/metrics`: committed
    /// offsets (the scrape turns them into lag against the partitions'
    /// high watermarks), members per group, groups per state.
    pub fn collect(&self, out: &mut Vec<Family>) {
        let mut committed = Family::new(
            "spindle_consumer_group_committed_offset",
            Kind::Gauge,
            "Last committed offset of a group on a partition.",
        );
        let mut members = Family::new(
            "spindle_consumer_group_members",
            Kind::Gauge,
            "Members of a consumer group.",
        );
        let mut states: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for (gid, e) in self.entries.borrow().iter() {
            *states.entry(e.group.state.name()).or_default() += 1;
            members.push(&[("group", gid)], e.group.members.len() as f64);
            for ((t, p), c) in &e.offsets {
                let p = p.to_string();
                let labels = [
                    ("group", gid.as_str()),
                    ("topic", t.as_str()),
                    ("partition", &p),
                ];
                committed.push(&labels, c.value.offset as f64);
            }
        }
        let mut groups = Family::new(
            "spindle_consumer_groups",
            Kind::Gauge,
            "Consumer groups by state.",
        );
        for state in [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
        ] {
            groups.push(
                &[("state", state)],
                states.get(state).copied().unwrap_or(0) as f64,
            );
        }
        out.extend([committed, members, groups]);
    }

    /// The coordinator's timers: rebalance and session deadlines every
    /// tick, offset expiry every retention check. Runs until the shard
    /// stops.
    pub async fn run_timers(self: Rc<Self>, shard: Rc<Shard>) {
        let tick = Duration::from_millis(GROUP_TICK_MS);
        let mut next_expiry = Instant::now() + self.settings.offsets_retention_check;
        loop {
            glommio::timer::sleep(tick).await;
            self.tick(&shard);
            if Instant::now() >= next_expiry {
                self.expire_offsets(&shard).await;
                next_expiry = Instant::now() + self.settings.offsets_retention_check;
            }
        }
    }
}

/// Consumer-group lag per partition: the partition's high watermark
/// minus the group's committed offset (partitions and groups may live on
/// different shards, so this is taken from the merged reports).
pub fn group_lag(fams: &[Family]) -> Option<Family> {
    let find = |name: &str| fams.iter().find(|f| f.name == name);
    let committed = find("spindle_consumer_group_committed_offset")?;
    let hw = find("spindle_partition_high_watermark")?;
    let label = |s: &Sample, k: &str| {
        s.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let hws: std::collections::BTreeMap<(String, String), f64> = hw
        .samples
        .iter()
        .map(|s| ((label(s, "topic"), label(s, "partition")), s.value))
        .collect();
    let mut lag = Family::new(
        "spindle_consumer_group_lag",
        Kind::Gauge,
        "Records a group has yet to consume on a partition: high watermark minus committed offset.",
    );
    for s in &committed.samples {
        let (g, t, p) = (label(s, "group"), label(s, "topic"), label(s, "partition"));
        if let Some(h) = hws.get(&(t.clone(), p.clone())) {
            lag.push(
                &[("group", &g), ("topic", &t), ("partition", &p)],
                (h - s.value).max(0.0),
            );
        }
    }
    Some(lag)
}

/// Tombstones for a group's offsets of the topics `which` picks.
fn tombstones_of(group: &str, e: &Entry, which: impl Fn(&str) -> bool) -> Vec<Key> {
    e.offsets
        .keys()
        .filter(|(t, _)| which(t))
        .map(|(t, p)| Key::Offset {
            group: group.to_string(),
            topic: t.clone(),
            partition: *p,
        })
        .collect()
}

/// One record of the offsets log, applied while replaying.
fn apply_record(
    rec: spindle_codec::records::Record<'_>,
    groups: &mut HashMap<String, (GroupValue, i64)>,
    removed: &mut HashMap<String, i64>,
    offsets: &mut HashMap<(String, String, i32), Committed>,
) {
    let Some(kb) = rec.key else { return };
    let key = match records::decode_key(kb) {
        Ok(Some(k)) => k,
        Ok(None) => return,
        Err(e) => {
            warn!(offset = rec.offset, error = %e, "undecodable key in the offsets log");
            return;
        }
    };
    match (key, rec.value) {
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            None,
        ) => {
            offsets.remove(&(group, topic, partition));
        }
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            Some(v),
        ) => match records::decode_offset(v) {
            Ok(value) => {
                offsets.insert(
                    (group, topic, partition),
                    Committed {
                        value,
                        record_offset: rec.offset,
                    },
                );
            }
            Err(e) => warn!(offset = rec.offset, error = %e, "undecodable offset commit"),
        },
        (Key::Group { group }, None) => {
            groups.remove(&group);
            removed.insert(group, rec.offset);
        }
        (Key::Group { group }, Some(v)) => match records::decode_group(v) {
            Ok(value) => {
                removed.remove(&group);
                groups.insert(group, (value, rec.offset));
            }
            Err(e) => warn!(offset = rec.offset, error = %e, "undecodable group metadata"),
        },
    }
}

/// The answer to any call while the offsets are still being replayed.
fn loading(call: &GroupCall) -> GroupResult {
    const C: i16 = errors::COORDINATOR_LOAD_IN_PROGRESS;
    match call {
        GroupCall::Join { params, .. } => {
            GroupResult::Join(JoinOutcome::error(C, &params.member_id))
        }
        GroupCall::Sync { .. } => GroupResult::Sync(SyncOutcome::error(C)),
        GroupCall::Heartbeat { .. } | GroupCall::List | GroupCall::DropTopic { .. } => {
            GroupResult::Code(C)
        }
        GroupCall::Leave { members, .. } => GroupResult::Leave(C, vec![C; members.len()]),
        GroupCall::Commit { topics, .. } => {
            GroupResult::Commit(topics.iter().map(|t| vec![C; t.partitions.len()]).collect())
        }
        GroupCall::Fetch { .. } => GroupResult::Fetch(C, Vec::new()),
        GroupCall::Describe { groups } => GroupResult::Describe(
            groups
                .iter()
                .map(|g| Described {
                    group_id: g.clone(),
                    state: None,
                    protocol_type: String::new(),
                    protocol: String::new(),
                    members: Vec::new(),
                })
                .collect(),
        ),
        GroupCall::Delete { groups } => GroupResult::Delete(vec![C; groups.len()]),
        GroupCall::OffsetDelete { .. } => GroupResult::OffsetDelete(C, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hash_like_kafka() {
        // Java: "group".hashCode() == 98629247, "" == 0.
        assert_eq!(java_hash("group"), 98_629_247);
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("console-consumer-12345"), {
            let mut h: i32 = 0;
            for c in "console-consumer-12345".chars() {
                h = h.wrapping_mul(31).wrapping_add(c as i32);
            }
            h
        });
    }

    #[test]
    fn tombstones_name_the_picked_topics() {
        let t = Instant::now();
        let limits = GroupLimits {
            initial_rebalance_delay: Duration::ZERO,
            max_size: 10,
        };
        let mut e = Entry {
            group: Group::new("g".into(), limits, Now { at: t, wall_ms: 0 }),
            partition: 0,
            offsets: HashMap::new(),
        };
        for (topic, p) in [("a", 0), ("a", 1), ("b", 0)] {
            e.offsets.insert(
                (topic.to_string(), p),
                Committed {
                    value: OffsetValue {
                        offset: 1,
                        leader_epoch: -1,
                        metadata: String::new(),
                        commit_timestamp_ms: 0,
                    },
                    record_offset: 0,
                },
            );
        }
        let some = tombstones_of("g", &e, |t| t == "a");
        assert_eq!(some.len(), 2);
        assert!(some
            .iter()
            .all(|k| matches!(k, Key::Offset { topic, .. } if topic == "a")));
        assert_eq!(tombstones_of("g", &e, |_| true).len(), 3);
    }
}
