//! What the group API handlers send the coordinator, and what comes
//! back: plain data, so a call crosses the shard mesh as it is.

use bytes::Bytes;

use super::group::{JoinOutcome, JoinParams, SyncOutcome, SyncParams};
use crate::errors::ErrorCode;

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
    Code(ErrorCode),
    /// Group-level code, then a code per member asked about.
    Leave(ErrorCode, Vec<ErrorCode>),
    /// A code per partition, in request order.
    Commit(Vec<Vec<ErrorCode>>),
    /// Group-level code and the offsets by topic.
    Fetch(ErrorCode, Vec<(String, Vec<FetchedPartition>)>),
    Describe(Vec<Described>),
    List(Vec<Listed>),
    /// A code per group, in request order.
    Delete(Vec<ErrorCode>),
    /// Group-level code, then per topic a code per partition.
    OffsetDelete(ErrorCode, Vec<Vec<ErrorCode>>),
    Done,
}
