//! What shards send each other, and the routing of work to the shard
//! that owns it: partition ops to the partition's owner, group calls to
//! the coordinator of the group's offsets partition.

use std::rc::Rc;

use glommio::channels::channel_mesh::Receivers;

use super::ops::{OpReply, PartitionOp};
use super::Shard;
use crate::errors;
use crate::group_coordinator::{self, GroupCall, GroupResult};
use crate::transport::listener::HandOff;

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

impl Shard {
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
