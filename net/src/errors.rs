//! Kafka error codes the broker answers with, and the mappings from engine
//! errors to them.
//!
//! A code travels through the broker as an [`ErrorCode`], never a bare
//! `i16`: only the encoders of responses turn it into the number on the
//! wire ([`ErrorCode::code`]). The engine's errors map to codes by
//! exhaustive matches with no wildcard arm, so a new engine error does
//! not compile until someone decides what a client is told.

use std::fmt;

use kafka_protocol::ResponseError as E;
use spindle_codec::kafka_protocol;
use spindle_engine::{AppendError, ReadError, RecoveryError};

/// A Kafka error code (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(i16);

impl ErrorCode {
    const fn of(e: E) -> ErrorCode {
        ErrorCode(e.code())
    }

    /// The code as the wire carries it.
    pub const fn code(self) -> i16 {
        self.0
    }

    pub const fn is_none(self) -> bool {
        self.0 == NONE.0
    }
}

/// The number, as logs showed it before codes had a type.
impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub const NONE: ErrorCode = ErrorCode(0);
pub const UNKNOWN_SERVER_ERROR: ErrorCode = ErrorCode::of(E::UnknownServerError);
pub const OFFSET_OUT_OF_RANGE: ErrorCode = ErrorCode::of(E::OffsetOutOfRange);
pub const CORRUPT_MESSAGE: ErrorCode = ErrorCode::of(E::CorruptMessage);
pub const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = ErrorCode::of(E::UnknownTopicOrPartition);
pub const MESSAGE_TOO_LARGE: ErrorCode = ErrorCode::of(E::MessageTooLarge);
pub const INVALID_TOPIC: ErrorCode = ErrorCode::of(E::InvalidTopicException);
pub const INVALID_REQUIRED_ACKS: ErrorCode = ErrorCode::of(E::InvalidRequiredAcks);
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: ErrorCode = ErrorCode::of(E::OutOfOrderSequenceNumber);
pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode::of(E::UnsupportedVersion);
pub const TOPIC_ALREADY_EXISTS: ErrorCode = ErrorCode::of(E::TopicAlreadyExists);
pub const INVALID_PARTITIONS: ErrorCode = ErrorCode::of(E::InvalidPartitions);
pub const INVALID_REPLICATION_FACTOR: ErrorCode = ErrorCode::of(E::InvalidReplicationFactor);
pub const INVALID_REQUEST: ErrorCode = ErrorCode::of(E::InvalidRequest);
pub const INVALID_CONFIG: ErrorCode = ErrorCode::of(E::InvalidConfig);
pub const INVALID_PRODUCER_EPOCH: ErrorCode = ErrorCode::of(E::InvalidProducerEpoch);
pub const KAFKA_STORAGE_ERROR: ErrorCode = ErrorCode::of(E::KafkaStorageError);
pub const INVALID_RECORD: ErrorCode = ErrorCode::of(E::InvalidRecord);
pub const UNKNOWN_TOPIC_ID: ErrorCode = ErrorCode::of(E::UnknownTopicId);
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: ErrorCode =
    ErrorCode::of(E::TransactionalIdAuthorizationFailed);
pub const NOT_LEADER_OR_FOLLOWER: ErrorCode = ErrorCode::of(E::NotLeaderOrFollower);
pub const REQUEST_TIMED_OUT: ErrorCode = ErrorCode::of(E::RequestTimedOut);
pub const FETCH_SESSION_ID_NOT_FOUND: ErrorCode = ErrorCode::of(E::FetchSessionIdNotFound);
pub const COORDINATOR_LOAD_IN_PROGRESS: ErrorCode = ErrorCode::of(E::CoordinatorLoadInProgress);
pub const COORDINATOR_NOT_AVAILABLE: ErrorCode = ErrorCode::of(E::CoordinatorNotAvailable);
pub const NOT_COORDINATOR: ErrorCode = ErrorCode::of(E::NotCoordinator);
pub const ILLEGAL_GENERATION: ErrorCode = ErrorCode::of(E::IllegalGeneration);
pub const INCONSISTENT_GROUP_PROTOCOL: ErrorCode = ErrorCode::of(E::InconsistentGroupProtocol);
pub const INVALID_GROUP_ID: ErrorCode = ErrorCode::of(E::InvalidGroupId);
pub const UNKNOWN_MEMBER_ID: ErrorCode = ErrorCode::of(E::UnknownMemberId);
pub const INVALID_SESSION_TIMEOUT: ErrorCode = ErrorCode::of(E::InvalidSessionTimeout);
pub const REBALANCE_IN_PROGRESS: ErrorCode = ErrorCode::of(E::RebalanceInProgress);
pub const INVALID_COMMIT_OFFSET_SIZE: ErrorCode = ErrorCode::of(E::InvalidCommitOffsetSize);
pub const OFFSET_METADATA_TOO_LARGE: ErrorCode = ErrorCode::of(E::OffsetMetadataTooLarge);
pub const NON_EMPTY_GROUP: ErrorCode = ErrorCode::of(E::NonEmptyGroup);
pub const GROUP_ID_NOT_FOUND: ErrorCode = ErrorCode::of(E::GroupIdNotFound);
pub const MEMBER_ID_REQUIRED: ErrorCode = ErrorCode::of(E::MemberIdRequired);
pub const FENCED_INSTANCE_ID: ErrorCode = ErrorCode::of(E::FencedInstanceId);
pub const GROUP_MAX_SIZE_REACHED: ErrorCode = ErrorCode::of(E::GroupMaxSizeReached);
pub const GROUP_SUBSCRIBED_TO_TOPIC: ErrorCode = ErrorCode::of(E::GroupSubscribedToTopic);

/// What a client is told when an append fails.
pub fn append_error_code(e: &AppendError) -> ErrorCode {
    match e {
        AppendError::Corrupt(_) => CORRUPT_MESSAGE,
        AppendError::InvalidRecord(_) => INVALID_RECORD,
        AppendError::BatchTooLarge { .. } => MESSAGE_TOO_LARGE,
        AppendError::Poisoned | AppendError::Io(_) => KAFKA_STORAGE_ERROR,
        // The log closed under the request (shutdown, topic deleted): the
        // client retries and finds out which.
        AppendError::Closed => NOT_LEADER_OR_FOLLOWER,
        AppendError::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
        AppendError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
        // Only replica fetchers append at given offsets; their answer is
        // to fetch again from the log end, never a client's.
        AppendError::OffsetMismatch { .. } => OFFSET_OUT_OF_RANGE,
    }
}

/// What a client is told when a read fails.
pub fn read_error_code(e: &ReadError) -> ErrorCode {
    match e {
        ReadError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        ReadError::Closed => NOT_LEADER_OR_FOLLOWER,
        ReadError::Io(_) | ReadError::Poisoned | ReadError::Corrupt { .. } => KAFKA_STORAGE_ERROR,
    }
}

/// What a client is told when a write of the offsets log fails: as Kafka
/// answers, so that clients find the coordinator again and retry, unless
/// the commit itself is too large.
pub fn offsets_append_error_code(e: &AppendError) -> ErrorCode {
    match e {
        AppendError::BatchTooLarge { .. } => INVALID_COMMIT_OFFSET_SIZE,
        AppendError::Corrupt(_)
        | AppendError::InvalidRecord(_)
        | AppendError::Poisoned
        | AppendError::Io(_)
        | AppendError::Closed
        | AppendError::OutOfOrderSequence { .. }
        | AppendError::InvalidProducerEpoch { .. }
        | AppendError::OffsetMismatch { .. } => COORDINATOR_NOT_AVAILABLE,
    }
}

/// What a client is told about a partition whose log does not open: its
/// storage is offline (Kafka's answer for an offline log dir, which
/// clients retry), whatever the cause.
pub fn recovery_error_code(e: &RecoveryError) -> ErrorCode {
    match e {
        RecoveryError::Io { .. }
        | RecoveryError::Corrupt { .. }
        | RecoveryError::BadFileName(_) => KAFKA_STORAGE_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kafkas_numbers() {
        assert_eq!(NONE.code(), 0);
        assert_eq!(UNKNOWN_TOPIC_OR_PARTITION.code(), 3);
        assert_eq!(FETCH_SESSION_ID_NOT_FOUND.code(), 70);
        assert!(NONE.is_none() && !KAFKA_STORAGE_ERROR.is_none());
        assert_eq!(NOT_LEADER_OR_FOLLOWER.to_string(), "6");
    }
}
