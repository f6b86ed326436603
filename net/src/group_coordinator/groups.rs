//! The group operations on the coordinator: JoinGroup and SyncGroup
//! (which may wait for the rebalance), describe, list and delete. Each
//! applies the call to the group's state machine, then writes what the
//! group now owes the offsets log.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use spindle_codec::records::BatchWriter;
use tracing::info;

use super::calls::{Described, DescribedMember, Listed};
use super::group::{
    Group, GroupState, JoinOutcome, JoinParams, Persist, Reply, SyncOutcome, SyncParams,
};
use super::offsets::tombstones_of;
use super::records::{self, Key};
use super::{now, Entry, GroupCoordinator};
use crate::errors::{self, ErrorCode};
use crate::shard::Shard;

impl GroupCoordinator {
    pub(super) async fn join(
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

    pub(super) async fn sync(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        group: String,
        p: SyncParams,
    ) -> SyncOutcome {
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
    pub(super) fn after_change(self: &Rc<Self>, shard: &Rc<Shard>, group: &str) {
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
    pub(super) async fn write_group(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        group: &str,
    ) -> Result<(), ErrorCode> {
        let partition = self
            .entries
            .borrow()
            .get(group)
            .map(|e| e.partition)
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let (writer, log) = self.writer_and_log(shard, partition).await?;
        let _permit = writer.shared().await?;
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
        self.append(shard, &writer, &log, w.finish())
            .await
            .map(|_| ())
    }

    pub(super) fn describe(&self, group: &str) -> Described {
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

    pub(super) fn list(&self) -> Vec<Listed> {
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

    pub(super) async fn delete_group(self: &Rc<Self>, shard: &Rc<Shard>, group: &str) -> ErrorCode {
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
}
