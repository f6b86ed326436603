//! What goes into a group's state machine and what comes out of it.

use std::time::Duration;

use bytes::Bytes;

use crate::errors::ErrorCode;

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
    /// Random bytes for the member id this join hands out if it has none,
    /// drawn by the caller so the state machine stays pure (and a seeded
    /// simulation can replay it).
    pub member_id_random: [u8; 16],
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
    /// it; report back with [`super::Group::sync_persisted`].
    Assignment(i32),
    /// Any other change of generation or membership.
    Metadata,
}
