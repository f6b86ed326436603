//! The log APIs: what producers and consumers send. Produce and Fetch
//! carry record bytes that are never decoded or copied; ListOffsets and
//! InitProducerId serve the clients around them.

pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod produce;
