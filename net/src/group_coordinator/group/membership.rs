//! A member's life after its join: SyncGroup (the leader's assignment,
//! answered once durable), heartbeats, leaves, the check of who may
//! commit offsets, and the timers (sessions, rebalance and sync
//! deadlines, the initial delay).

use std::collections::HashMap;

use bytes::Bytes;

use super::messages::{Persist, Reply, SyncOutcome, SyncParams, SyncTx};
use super::{Group, GroupState, Now};
use crate::errors::{self, ErrorCode};

impl Group {
    pub(super) fn on_sync(&mut self, p: SyncParams, tx: SyncTx, now: Now) -> Reply<SyncOutcome> {
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

    pub(super) fn on_sync_persisted(&mut self, generation: i32, error: ErrorCode, now: Now) {
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

    pub(super) fn on_heartbeat(
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

    pub(super) fn on_leave(
        &mut self,
        who: &[(String, Option<String>)],
        now: Now,
    ) -> Vec<ErrorCode> {
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

    pub(super) fn on_check_commit(
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

    pub(super) fn on_tick(&mut self, now: Now) {
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
}
