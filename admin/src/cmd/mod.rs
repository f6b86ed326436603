//! One module per command family; each turns its arguments into requests,
//! and the answers into a table or JSON.

pub mod cluster;
pub mod consume;
pub mod consume_group;
pub mod group;
pub mod group_reset;
pub mod produce;
pub mod topic;
pub mod topic_config;
