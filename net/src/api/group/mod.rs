//! The consumer-group APIs (classic protocol). Each decodes its request,
//! routes a [`crate::group_coordinator::GroupCall`] to the shard that
//! coordinates the group, and encodes what comes back.

pub mod delete_groups;
pub mod describe_groups;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod sync_group;
