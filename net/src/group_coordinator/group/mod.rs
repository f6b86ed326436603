//! One consumer group under the classic protocol: members, generations
//! and the rebalance state machine, as Kafka's coordinator runs it.
//!
//! Empty -> PreparingRebalance (a member joins) -> CompletingRebalance
//! (every member rejoined, or the rebalance timeout passed: generation + 1,
//! JoinGroup answered, the leader gets the member list) -> Stable (the
//! leader's SyncGroup assignment is durable, every SyncGroup answered).
//! A join, leave or session expiry in Stable or CompletingRebalance starts
//! another round; the last member leaving ends in Empty.
//!
//! Pure state: time and the random bytes of new member ids come in as
//! arguments, waiting JoinGroup and SyncGroup requests are channels the
//! state machine answers on, and writes to the offsets log are asked for
//! ([`Group::take_persist`]) rather than done here. Every transition is a
//! public method below that checks the group's invariants after it.
//!
//! [`messages`]: what goes in (join and sync parameters, the time) and
//! what comes out (outcomes, writes owed); `rebalance`: joins and the
//! rounds they start; `membership`: sync, heartbeats, leaves, commit
//! checks and the timers of a group whose round is under way or done.

mod membership;
pub mod messages;
mod rebalance;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::records::{GroupValue, MemberValue};
use crate::errors::ErrorCode;
pub use messages::{
    JoinOutcome, JoinParams, JoinTx, JoinedMember, Persist, Reply, SyncOutcome, SyncParams, SyncTx,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The names Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Now, on both clocks: deadlines are monotonic, timestamps that are
/// persisted are wall-clock milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall_ms: i64,
}

/// Coordinator settings a group needs.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub initial_rebalance_delay: Duration,
    pub max_size: usize,
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join: Option<JoinTx>,
    sync: Option<SyncTx>,
    /// Session expiry, pushed back by every heartbeat.
    deadline: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id, for static members.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet back; a
    /// rebalance waits for them until their session timeout.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay_until: Option<Instant>,
    /// CompletingRebalance: members that have not sent SyncGroup by then
    /// are removed.
    sync_deadline: Option<Instant>,
    /// Wall-clock ms of the last state change (Kafka's
    /// currentStateTimestamp: offsets of an Empty group expire from it).
    pub state_since_ms: i64,
    persist: Option<Persist>,
    limits: GroupLimits,
}

/// A member id as Kafka makes one: a prefix and a version 4 UUID (from
/// the caller's random bytes).
fn new_member_id(prefix: &str, random: [u8; 16]) -> String {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("{prefix}-{}", uuid::Uuid::from_bytes(b))
}

impl Group {
    pub fn new(id: String, limits: GroupLimits, now: Now) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            sync_deadline: None,
            state_since_ms: now.wall_ms,
            persist: None,
            limits,
        }
    }

    /// A group as its last metadata record left it: members restored with
    /// fresh sessions, so they carry on without a rebalance if they come
    /// back in time (as Kafka does when a coordinator loads a group).
    pub fn restore(id: String, v: GroupValue, limits: GroupLimits, now: Now) -> Group {
        let mut g = Group::new(id, limits, now);
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
        g.protocol = v.protocol;
        g.state_since_ms = v.state_timestamp_ms;
        for m in v.members {
            let protocol = g.protocol.clone().unwrap_or_default();
            let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            if let Some(i) = &m.instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol, m.subscription)],
                    assignment: m.assignment,
                    join: None,
                    sync: None,
                    deadline: now.at + session,
                },
            );
        }
        if !g.members.is_empty() && g.protocol.is_some() {
            g.state = GroupState::Stable;
            g.leader = v
                .leader
                .filter(|l| g.members.contains_key(l))
                .or_else(|| g.members.keys().next().cloned());
        }
        g
    }

    /// The metadata record of the group as it is now.
    pub fn value(&self) -> GroupValue {
        // Checked in release too: this record outlives the process, and a
        // leader that is not a member would be written for good.
        assert!(
            self.leader_is_member(),
            "group {}: leader {:?} is not a member",
            self.id,
            self.leader
        );
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128)
                        as i32,
                    session_timeout_ms: m.session_timeout.as_millis().min(i32::MAX as u128) as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The write of group metadata this group owes the log, if any.
    pub fn take_persist(&mut self) -> Option<Persist> {
        self.persist.take()
    }

    pub(super) fn want_persist(&mut self, p: Persist) {
        // An assignment write also carries any metadata change before it.
        if self.persist != Some(Persist::Assignment(self.generation)) || p != Persist::Metadata {
            self.persist = Some(p);
        }
    }

    pub(super) fn set_state(&mut self, s: GroupState, now: Now) {
        self.state = s;
        self.state_since_ms = now.wall_ms;
    }

    /// Is `instance_id` held by a member other than `member_id`?
    pub(super) fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| m != member_id)
    }

    /// Could a member with these protocols join? (Kafka's
    /// supportsProtocols: one protocol all members share.)
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// A JoinGroup: answered now, or later on `tx` when the round ends.
    pub fn join(&mut self, p: JoinParams, tx: JoinTx, now: Now) -> Reply<JoinOutcome> {
        let before = self.generation;
        let r = self.on_join(p, tx, now);
        self.check_invariants(before);
        r
    }

    /// A SyncGroup: answered now, or later on `tx` when the leader's
    /// assignment is durable.
    pub fn sync(&mut self, p: SyncParams, tx: SyncTx, now: Now) -> Reply<SyncOutcome> {
        let before = self.generation;
        let r = self.on_sync(p, tx, now);
        self.check_invariants(before);
        r
    }

    /// The leader's assignment for `generation` was written (`error`
    /// NONE) or not: answer the waiting SyncGroups, unless a new round
    /// began since.
    pub fn sync_persisted(&mut self, generation: i32, error: ErrorCode, now: Now) {
        let before = self.generation;
        self.on_sync_persisted(generation, error, now);
        self.check_invariants(before);
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> ErrorCode {
        let before = self.generation;
        let r = self.on_heartbeat(member_id, instance_id, generation, now);
        self.check_invariants(before);
        r
    }

    /// LeaveGroup for each (member id, instance id): the codes per member.
    pub fn leave(&mut self, who: &[(String, Option<String>)], now: Now) -> Vec<ErrorCode> {
        let before = self.generation;
        let r = self.on_leave(who, now);
        self.check_invariants(before);
        r
    }

    /// OffsetCommit's check of who commits: `Ok` to go on.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> Result<(), ErrorCode> {
        let before = self.generation;
        let r = self.on_check_commit(member_id, instance_id, generation, now);
        self.check_invariants(before);
        r
    }

    /// Expires sessions and pending member ids, ends overdue join and sync
    /// phases and the initial delay. Called on the coordinator's tick.
    pub fn tick(&mut self, now: Now) {
        let before = self.generation;
        self.on_tick(now);
        self.check_invariants(before);
    }

    fn leader_is_member(&self) -> bool {
        self.leader
            .as_ref()
            .is_none_or(|l| self.members.contains_key(l))
    }

    /// What holds between transitions (TigerBeetle's style): checked in
    /// debug builds, where the tests and seeded simulations run, after
    /// every transition, so a broken rule fails at the step that broke it.
    fn check_invariants(&self, generation_before: i32) {
        if !cfg!(debug_assertions) {
            return;
        }
        let id = &self.id;
        assert!(
            self.generation >= generation_before,
            "group {id}: generation went back from {generation_before} to {}",
            self.generation
        );
        assert!(
            self.leader_is_member(),
            "group {id}: leader {:?} is not a member",
            self.leader
        );
        for (key, m) in &self.members {
            assert_eq!(key, &m.id, "group {id}: member filed under another id");
            assert!(
                !self.pending.contains_key(key),
                "group {id}: {key} is both a member and pending"
            );
        }
        for (instance, member) in &self.static_members {
            assert!(
                self.members
                    .get(member)
                    .is_some_and(|m| m.instance_id.as_deref() == Some(instance.as_str())),
                "group {id}: instance {instance} maps to {member}, not a member of that instance"
            );
        }
        let joining = self.members.values().any(|m| m.join.is_some());
        let syncing = self.members.values().any(|m| m.sync.is_some());
        let state = self.state;
        match state {
            GroupState::Empty => {
                assert!(
                    !joining && !syncing,
                    "group {id}: Empty with waiting members"
                );
                assert!(
                    self.rebalance_deadline.is_none(),
                    "group {id}: Empty with a round"
                );
            }
            GroupState::PreparingRebalance => {
                assert!(!syncing, "group {id}: SyncGroup waits in {state:?}");
                assert!(
                    self.rebalance_deadline.is_some(),
                    "group {id}: a round without a deadline"
                );
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                assert!(
                    !self.members.is_empty() && self.leader.is_some(),
                    "group {id}: {state:?} without members or a leader"
                );
                assert!(
                    self.protocol.is_some(),
                    "group {id}: {state:?} without a protocol"
                );
                assert!(!joining, "group {id}: JoinGroup waits in {state:?}");
                assert!(
                    self.rebalance_deadline.is_none(),
                    "group {id}: {state:?} with a join deadline"
                );
                if state == GroupState::CompletingRebalance {
                    assert!(self.sync_deadline.is_some(), "group {id}: no sync deadline");
                } else {
                    // Stable: every member got its assignment.
                    assert!(!syncing, "group {id}: SyncGroup waits in Stable");
                    assert!(
                        self.sync_deadline.is_none(),
                        "group {id}: Stable with a sync deadline"
                    );
                }
            }
        }
    }

    /// Members that subscribe to `topic` (from their consumer-protocol
    /// metadata), for OffsetDelete.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        if self.protocol_type.as_deref() != Some("consumer") || self.state == GroupState::Empty {
            return false;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .any(|m| subscription_topics(&m.metadata_for(&protocol)).any(|t| t == topic))
    }
}

fn metadata_in(protocols: &[(String, Bytes)], name: &str) -> Bytes {
    protocols
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, m)| m.clone())
        .unwrap_or_default()
}

/// Topic names of a ConsumerProtocolSubscription (version i16, then an
/// array of strings; later fields are not needed). Malformed metadata
/// names no topic.
fn subscription_topics(meta: &[u8]) -> impl Iterator<Item = String> + '_ {
    let mut r = spindle_codec::wire::Reader::new(meta);
    let n = r.i16().and_then(|_| r.i32()).unwrap_or(0).max(0);
    (0..n).map_while(move |_| r.string(false).ok().map(str::to_string))
}

#[cfg(test)]
mod tests;
