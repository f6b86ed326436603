//! The Kafka wire codec shared by the broker and loadgen. Pure: no I/O, no
//! async, no runtime.
