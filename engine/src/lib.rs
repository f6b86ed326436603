//! Spindle's storage engine: partition logs in Kafka's on-disk layout,
//! written through direct I/O.
