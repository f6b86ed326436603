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
//! segments below it (`writer`). Writers of one partition go through a
//! fair gate: commits share it, rewrites and deletions take it whole, so
//! no record of a deletion can land between a commit's append and its
//! effect in memory.
//!
//! Split as Kafka splits its own: [`routing`] (which shard coordinates a
//! group), [`calls`] (what the API handlers send and get back), `replay`
//! (rebuilding groups and offsets from the log at start), [`group`] (one
//! group's rebalance state machine, pure), `groups` (the group
//! operations: join, sync, describe, list, delete), `offsets` (commits,
//! fetches, deletions and expiry), `writer` (the offsets-log writer:
//! its gate, appends, rewrites), [`metrics`] and [`records`] (the record
//! formats).
//!
//! May import: the shard (for its logs and snapshot), metrics, the codec,
//! errors, constants and config.

pub mod calls;
pub mod group;
mod groups;
pub mod metrics;
mod offsets;
pub mod records;
mod replay;
pub mod routing;
mod writer;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::GroupConfig;
use crate::constants::GROUP_TICK_MS;
use crate::errors::{self, ErrorCode};
use crate::shard::Shard;
pub use calls::{
    CommitPartition, CommitTopic, Described, DescribedMember, FetchedPartition, GroupCall,
    GroupResult, Listed,
};
use group::{Group, GroupLimits, GroupState, JoinOutcome, Now, SyncOutcome};
pub use metrics::group_lag;
use offsets::Committed;
pub use routing::route;
use writer::PartitionWriter;

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

impl Settings {
    pub fn from_config(g: &GroupConfig) -> Settings {
        Settings {
            limits: GroupLimits {
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
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    }
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

pub struct GroupCoordinator {
    settings: Settings,
    entries: RefCell<HashMap<String, Entry>>,
    writers: RefCell<HashMap<i32, Rc<PartitionWriter>>>,
    loaded: Cell<bool>,
}

impl GroupCoordinator {
    pub fn new(settings: Settings) -> Rc<GroupCoordinator> {
        Rc::new(GroupCoordinator {
            settings,
            entries: RefCell::new(HashMap::new()),
            writers: RefCell::new(HashMap::new()),
            loaded: Cell::new(false),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
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

    /// Session expiry and rebalance deadlines, on every tick.
    pub(super) fn tick(self: &Rc<Self>, shard: &Rc<Shard>) {
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

/// The answer to any call while the offsets are still being replayed.
fn loading(call: &GroupCall) -> GroupResult {
    const C: ErrorCode = errors::COORDINATOR_LOAD_IN_PROGRESS;
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
