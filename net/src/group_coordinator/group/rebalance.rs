//! Joins, and the rounds of rebalance they start: a member joins (new,
//! returning static, or known), the group prepares a round, and once
//! every member rejoined (or the rebalance timeout passed) the round
//! completes: generation + 1, a protocol chosen, JoinGroup answered.

use bytes::Bytes;

use super::messages::{JoinOutcome, JoinParams, JoinTx, JoinedMember, Persist, Reply, SyncOutcome};
use super::{metadata_in, new_member_id, Group, GroupState, Member, Now};
use crate::errors::{self, ErrorCode};

impl Group {
    pub(super) fn on_join(&mut self, p: JoinParams, tx: JoinTx, now: Now) -> Reply<JoinOutcome> {
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

    pub(super) fn join_unknown(
        &mut self,
        p: JoinParams,
        tx: JoinTx,
        now: Now,
    ) -> Reply<JoinOutcome> {
        if let Some(instance) = p.instance_id.clone() {
            let id = new_member_id(&instance, p.member_id_random);
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
        let id = new_member_id(prefix, p.member_id_random);
        if p.require_known_member {
            if self.members.len() + self.pending.len() >= self.limits.max_size {
                return Reply::Now(JoinOutcome::error(errors::GROUP_MAX_SIZE_REACHED, ""));
            }
            self.pending.insert(id.clone(), now.at + p.session_timeout);
            return Reply::Now(JoinOutcome::error(errors::MEMBER_ID_REQUIRED, &id));
        }
        self.add_member(id, p, tx, now)
    }

    pub(super) fn add_member(
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
    pub(super) fn replace_static(
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

    pub(super) fn join_known(&mut self, p: JoinParams, tx: JoinTx, now: Now) -> Reply<JoinOutcome> {
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

    pub(super) fn join_outcome(
        &self,
        member_id: &str,
        with_members: bool,
        skip: bool,
    ) -> JoinOutcome {
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

    pub(super) fn prepare_rebalance(&mut self, now: Now) {
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
        let end = now.at + self.rebalance_timeout();
        self.rebalance_deadline = Some(end);
        self.sync_deadline = None;
        let delay = self.limits.initial_rebalance_delay;
        self.initial_delay_until =
            (was_empty && !delay.is_zero()).then(|| (now.at + delay).min(end));
        self.try_complete_join(now);
    }

    pub(super) fn try_complete_join(&mut self, now: Now) {
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
    pub(super) fn complete_join(&mut self, now: Now) {
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
        // The generation moves by one per completed round; it never wraps.
        assert!(
            self.generation < i32::MAX,
            "group {}: generation overflow",
            self.id
        );
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
        self.sync_deadline = Some(now.at + self.rebalance_timeout());
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

    /// How long a round waits: the longest rebalance timeout of its
    /// members (Kafka's rebalanceTimeoutMs of the group).
    fn rebalance_timeout(&self) -> std::time::Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Kafka's selectProtocol: among the protocols every member supports,
    /// the one most members list first.
    pub(super) fn select_protocol(&self) -> Option<String> {
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
    pub(super) fn drop_member(&mut self, id: &str, code: ErrorCode) {
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
    pub(super) fn after_departure(&mut self, now: Now) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty => {}
        }
    }
}
