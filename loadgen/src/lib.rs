//! loadgen's library target: what other crates of the workspace share with
//! the `loadgen` binary. Today that is the child-broker launcher, which the
//! black-box tests (tests/) use too. Like the binary it never links
//! spindle-engine or spindle-net.

pub mod child_broker;
