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
//! Pure state: time comes in as arguments, waiting JoinGroup and SyncGroup
//! requests are channels the state machine answers on, and writes to the
//! offsets log are asked for ([`Group::take_persist`]) rather than done
//! here.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::records::{GroupValue, MemberValue};
use crate::errors::{self, ErrorCode};

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

/// A JoinGroup request, validated for group id and timeouts.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// The members and their metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ErrorCode) -> SyncOutcome {
        SyncOutcome {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub type JoinTx = flume::Sender<JoinOutcome>;
pub type SyncTx = flume::Sender<SyncOutcome>;

/// An answer now, or later on the channel given.
#[derive(Debug)]
pub enum Reply<T> {
    Now(T),
    Later,
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct SyncParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// A write of the group's metadata the coordinator owes the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// The leader's assignment for this generation: SyncGroup waits for
    /// it; report back with [`Group::sync_persisted`].
    Assignment(i32),
    /// Any other change of generation or membership.
    Metadata,
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

fn new_member_id(prefix: &str) -> String {
    let mut b: [u8; 16] = rand::random();
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

    fn want_persist(&mut self, p: Persist) {
        // An assignment write also carries any metadata change before it.
        if self.persist != Some(Persist::Assignment(self.generation)) || p != Persist::Metadata {
            self.persist = Some(p);
        }
    }

    fn set_state(&mut self, s: GroupState, now: Now) {
        self.state = s;
        self.state_since_ms = now.wall_ms;
    }

    /// Is `instance_id` held by a member other than `member_id`?
    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| m != member_id)
    }

    /// Could a member with these protocols join? (Kafka's
    /// supportsProtocols: one protocol all members share.)
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
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

    pub fn join(&mut self, p: JoinParams, tx: JoinTx, now: Now) -> Reply<JoinOutcome> {
        if !self.supports(&p.protocol_type, &p.protocols) {
            return Reply::Now(JoinOutcome::error(
                errors::INCONSISTENT_GROUP_PROTOCOL,
                &p.member_id,
            ));
        }
        if p.member_id.is_empty() {
            return self.join_unknown(p, tx, now);
        }
        if self.pending.remove(&p.member_id).is_some() {
            return self.add_member(p.member_id.clone(), p, tx, now);
        }
        if self.fenced(&p.member_id, p.instance_id.as_deref()) {
            return Reply::Now(JoinOutcome::error(errors::FENCED_INSTANCE_ID, &p.member_id));
        }
        if !self.members.contains_key(&p.member_id) {
            return Reply::Now(JoinOutcome::error(errors::UNKNOWN_MEMBER_ID, &p.member_id));
        }
        self.join_known(p, tx, now)
    }

    fn join_unknown(&mut self, p: JoinParams, tx: JoinTx, now: Now) -> Reply<JoinOutcome> {
        if let Some(instance) = p.instance_id.clone() {
            let id = new_member_id(&instance);
            if let Some(old) = self.static_members.get(&instance).cloned() {
                return self.replace_static(old, id, p, tx, now);
            }
            return self.add_member(id, p, tx, now);
        }
        let prefix = if p.client_id.is_empty() {
            "member"
        } else {
            &p.client_id
        };
        let id = new_member_id(prefix);
        if p.require_known_member {
            if self.members.len() + self.pending.len() >= self.limits.max_size {
                return Reply::Now(JoinOutcome::error(errors::GROUP_MAX_SIZE_REACHED, ""));
            }
            self.pending.insert(id.clone(), now.at + p.session_timeout);
            return Reply::Now(JoinOutcome::error(errors::MEMBER_ID_REQUIRED, &id));
        }
        self.add_member(id, p, tx, now)
    }

    fn add_member(
        &mut self,
        id: String,
        p: JoinParams,
        tx: JoinTx,
        now: Now,
    ) -> Reply<JoinOutcome> {
        if self.members.len() >= self.limits.max_size {
            return Reply::Now(JoinOutcome::error(errors::GROUP_MAX_SIZE_REACHED, &id));
        }
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if let Some(i) = &p.instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: p.instance_id,
                client_id: p.client_id,
                client_host: p.client_host,
                session_timeout: p.session_timeout,
                rebalance_timeout: p.rebalance_timeout,
                protocols: p.protocols,
                assignment: Bytes::new(),
                join: Some(tx),
                sync: None,
                deadline: now.at + p.session_timeout,
            },
        );
        if self.leader.is_none() {
            self.leader = Some(id);
        }
        match self.state {
            GroupState::PreparingRebalance => {
                // A new member during the initial delay extends it.
                if let (Some(until), Some(end)) =
                    (self.initial_delay_until, self.rebalance_deadline)
                {
                    let again = (now.at + self.limits.initial_rebalance_delay).min(end);
                    self.initial_delay_until = Some(until.max(again));
                }
                self.try_complete_join(now);
            }
            _ => self.prepare_rebalance(now),
        }
        Reply::Later
    }

    /// A static member came back with a new member id: the old id is
    /// fenced and the new one takes its place (and its assignment).
    fn replace_static(
        &mut self,
        old: String,
        id: String,
        p: JoinParams,
        tx: JoinTx,
        now: Now,
    ) -> Reply<JoinOutcome> {
        let Some(mut m) = self.members.remove(&old) else {
            self.static_members
                .remove(p.instance_id.as_deref().unwrap_or_default());
            return self.add_member(id, p, tx, now);
        };
        if let Some(j) = m.join.take() {
            let _ = j.send(JoinOutcome::error(errors::FENCED_INSTANCE_ID, &old));
        }
        if let Some(s) = m.sync.take() {
            let _ = s.send(SyncOutcome::error(errors::FENCED_INSTANCE_ID));
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let unchanged = m.metadata_for(&protocol) == metadata_in(&p.protocols, &protocol);
        m.id = id.clone();
        m.client_id = p.client_id;
        m.client_host = p.client_host;
        m.session_timeout = p.session_timeout;
        m.rebalance_timeout = p.rebalance_timeout;
        m.protocols = p.protocols;
        m.deadline = now.at + m.session_timeout;
        if let Some(i) = &p.instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        if self.leader.as_deref() == Some(old.as_str()) {
            self.leader = Some(id.clone());
        }
        if self.state == GroupState::Stable && unchanged {
            // Back without a rebalance, as KIP-345 intends.
            self.members.insert(id.clone(), m);
            self.want_persist(Persist::Metadata);
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            return Reply::Now(self.join_outcome(&id, is_leader, true));
        }
        m.join = Some(tx);
        self.members.insert(id, m);
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now),
            _ => self.prepare_rebalance(now),
        }
        Reply::Later
    }

    fn join_known(&mut self, p: JoinParams, tx: JoinTx, now: Now) -> Reply<JoinOutcome> {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        let Some(m) = self.members.get_mut(&p.member_id) else {
            return Reply::Now(JoinOutcome::error(errors::UNKNOWN_MEMBER_ID, &p.member_id));
        };
        let unchanged = m.protocols == p.protocols;
        m.session_timeout = p.session_timeout;
        m.rebalance_timeout = p.rebalance_timeout;
        m.deadline = now.at + p.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => {
                m.protocols = p.protocols;
                m.join = Some(tx);
                self.try_complete_join(now);
                Reply::Later
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && (self.state == GroupState::CompletingRebalance || !is_leader) =>
            {
                // Nothing changed: the current generation stands.
                let _ = protocol;
                Reply::Now(self.join_outcome(&p.member_id, is_leader, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.protocols = p.protocols;
                m.join = Some(tx);
                self.prepare_rebalance(now);
                Reply::Later
            }
            GroupState::Empty => {
                Reply::Now(JoinOutcome::error(errors::UNKNOWN_MEMBER_ID, &p.member_id))
            }
        }
    }

    fn join_outcome(&self, member_id: &str, with_members: bool, skip: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinOutcome {
            error: errors::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: skip,
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .values()
                    .map(|m| JoinedMember {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn prepare_rebalance(&mut self, now: Now) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(s) = m.sync.take() {
                    let _ = s.send(SyncOutcome::error(errors::REBALANCE_IN_PROGRESS));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.set_state(GroupState::PreparingRebalance, now);
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        let end = now.at + timeout;
        self.rebalance_deadline = Some(end);
        self.sync_deadline = None;
        let delay = self.limits.initial_rebalance_delay;
        self.initial_delay_until =
            (was_empty && !delay.is_zero()).then(|| (now.at + delay).min(end));
        self.try_complete_join(now);
    }

    fn try_complete_join(&mut self, now: Now) {
        if self.state != GroupState::PreparingRebalance
            || !self.pending.is_empty()
            || self.initial_delay_until.is_some_and(|t| now.at < t)
            || self.members.values().any(|m| m.join.is_none())
        {
            return;
        }
        self.complete_join(now);
    }

    /// Ends the join phase: members that did not rejoin leave (static ones
    /// stay: their session decides), the generation moves on and every
    /// waiting JoinGroup is answered.
    fn complete_join(&mut self, now: Now) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id, errors::UNKNOWN_MEMBER_ID);
        }
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now);
            self.want_persist(Persist::Metadata);
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now);
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.sync_deadline = Some(now.at + timeout);
        let leader = self.leader.clone().unwrap_or_default();
        let waiting: Vec<(String, JoinTx)> = self
            .members
            .values_mut()
            .filter_map(|m| {
                m.deadline = now.at + m.session_timeout;
                m.join.take().map(|j| (m.id.clone(), j))
            })
            .collect();
        for (id, tx) in waiting {
            let _ = tx.send(self.join_outcome(&id, id == leader, false));
        }
    }

    /// Kafka's selectProtocol: among the protocols every member supports,
    /// the one most members list first.
    fn select_protocol(&self) -> Option<String> {
        let leader = self.leader.as_ref().and_then(|l| self.members.get(l));
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = leader
            .unwrap_or(first)
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((_, n)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == n) {
                    v.0 += 1;
                }
            }
        }
        // Most votes; ties go to the earliest in the leader's order.
        let best = votes.iter().map(|v| v.0).max()?;
        votes
            .into_iter()
            .find(|v| v.0 == best)
            .map(|(_, n)| n.clone())
    }

    /// Removes a member, answering what it waits for with `code`.
    fn drop_member(&mut self, id: &str, code: ErrorCode) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(j) = m.join.take() {
            let _ = j.send(JoinOutcome::error(code, id));
        }
        if let Some(s) = m.sync.take() {
            let _ = s.send(SyncOutcome::error(code));
        }
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).is_some_and(|x| x == id) {
                self.static_members.remove(i);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// After members left: a new round, or the current one may be done.
    fn after_departure(&mut self, now: Now) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty => {}
        }
    }

    pub fn sync(&mut self, p: SyncParams, tx: SyncTx, now: Now) -> Reply<SyncOutcome> {
        let err = |c| Reply::Now(SyncOutcome::error(c));
        if self.fenced(&p.member_id, p.instance_id.as_deref()) {
            return err(errors::FENCED_INSTANCE_ID);
        }
        if !self.members.contains_key(&p.member_id) {
            return err(errors::UNKNOWN_MEMBER_ID);
        }
        if p.generation != self.generation {
            return err(errors::ILLEGAL_GENERATION);
        }
        let type_differs = p
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_differs = p
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol.as_ref());
        if type_differs || name_differs {
            return err(errors::INCONSISTENT_GROUP_PROTOCOL);
        }
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        let outcome = |g: &Group, a: Bytes| SyncOutcome {
            error: errors::NONE,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            assignment: a,
        };
        match self.state {
            GroupState::Empty => err(errors::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => err(errors::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let m = self.members.get_mut(&p.member_id);
                let a = m.map(|m| {
                    m.deadline = now.at + m.session_timeout;
                    m.assignment.clone()
                });
                Reply::Now(outcome(self, a.unwrap_or_default()))
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(&p.member_id) {
                    m.sync = Some(tx);
                    m.deadline = now.at + m.session_timeout;
                }
                if is_leader {
                    let mut given: HashMap<String, Bytes> = p.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.want_persist(Persist::Assignment(self.generation));
                }
                Reply::Later
            }
        }
    }

    /// The leader's assignment for `generation` was written (`error` 0) or
    /// not: answer the waiting SyncGroups, unless a new round began since.
    pub fn sync_persisted(&mut self, generation: i32, error: ErrorCode, now: Now) {
        if self.state != GroupState::CompletingRebalance || generation != self.generation {
            return;
        }
        if error != errors::NONE {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(s) = m.sync.take() {
                    let _ = s.send(SyncOutcome::error(error));
                }
            }
            self.prepare_rebalance(now);
            return;
        }
        self.set_state(GroupState::Stable, now);
        self.sync_deadline = None;
        let (ptype, pname) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            if let Some(s) = m.sync.take() {
                let _ = s.send(SyncOutcome {
                    error: errors::NONE,
                    protocol_type: ptype.clone(),
                    protocol_name: pname.clone(),
                    assignment: m.assignment.clone(),
                });
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> ErrorCode {
        if self.state == GroupState::Empty {
            return errors::UNKNOWN_MEMBER_ID;
        }
        if self.fenced(member_id, instance_id) {
            return errors::FENCED_INSTANCE_ID;
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return errors::UNKNOWN_MEMBER_ID;
        };
        if generation != self.generation {
            return errors::ILLEGAL_GENERATION;
        }
        m.deadline = now.at + m.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => errors::REBALANCE_IN_PROGRESS,
            _ => errors::NONE,
        }
    }

    /// LeaveGroup for each (member id, instance id): the codes per member.
    pub fn leave(&mut self, who: &[(String, Option<String>)], now: Now) -> Vec<ErrorCode> {
        let mut codes = Vec::with_capacity(who.len());
        let mut left = false;
        for (member_id, instance_id) in who {
            let id = match instance_id {
                Some(i) => match self.static_members.get(i) {
                    Some(m) if member_id.is_empty() || m == member_id => m.clone(),
                    Some(_) => {
                        codes.push(errors::FENCED_INSTANCE_ID);
                        continue;
                    }
                    None => {
                        codes.push(errors::UNKNOWN_MEMBER_ID);
                        continue;
                    }
                },
                None => member_id.clone(),
            };
            if self.pending.remove(&id).is_some() {
                codes.push(errors::NONE);
                left = true;
                continue;
            }
            if !self.members.contains_key(&id) {
                codes.push(errors::UNKNOWN_MEMBER_ID);
                continue;
            }
            self.drop_member(&id, errors::UNKNOWN_MEMBER_ID);
            codes.push(errors::NONE);
            left = true;
        }
        if left {
            self.after_departure(now);
        }
        codes
    }

    /// OffsetCommit's check of who commits: `Ok` to go on.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> Result<(), ErrorCode> {
        if generation < 0 && self.state == GroupState::Empty {
            // A consumer that only stores offsets here (assign + commit).
            return Ok(());
        }
        if self.fenced(member_id, instance_id) {
            return Err(errors::FENCED_INSTANCE_ID);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(errors::REBALANCE_IN_PROGRESS);
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(errors::UNKNOWN_MEMBER_ID);
        };
        if generation != self.generation {
            return Err(errors::ILLEGAL_GENERATION);
        }
        m.deadline = now.at + m.session_timeout;
        Ok(())
    }

    /// Expires sessions and pending member ids, ends overdue join and sync
    /// phases and the initial delay. Called on the coordinator's tick.
    pub fn tick(&mut self, now: Now) {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now.at);
        let pending_expired = self.pending.len() != before;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join.is_none() && m.sync.is_none() && m.deadline <= now.at)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.drop_member(id, errors::UNKNOWN_MEMBER_ID);
        }
        if !expired.is_empty() {
            self.after_departure(now);
        }
        match self.state {
            GroupState::PreparingRebalance => {
                if self.rebalance_deadline.is_some_and(|d| now.at >= d) {
                    self.complete_join(now);
                } else if pending_expired || self.initial_delay_until.is_some() {
                    self.try_complete_join(now);
                }
            }
            GroupState::CompletingRebalance if self.sync_deadline.is_some_and(|d| now.at >= d) => {
                let late: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in &late {
                    self.drop_member(id, errors::REBALANCE_IN_PROGRESS);
                }
                self.prepare_rebalance(now);
            }
            _ => {}
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
#[path = "group_tests.rs"]
mod tests;
