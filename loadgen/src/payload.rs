//! What a record's value holds: in e2e runs a 16-byte send stamp first
//! (a tag, the run id, the send time), then bytes cut from a pre-generated
//! payload pool.

use rand::{Rng, SeedableRng};

/// Bytes of the pre-generated payload the record values are cut from.
const PAYLOAD_POOL_BYTES: usize = 1 << 20;

/// The value of a stamped record starts with this tag, then the run id and
/// the send stamp, so e2e latency is only taken from records of this run.
pub const STAMP_TAG: u32 = 0x5350_4e44; // "SPND"
/// Bytes a stamp takes at the start of a record value.
pub const STAMP_LEN: usize = 16;

/// Payload like kafka-producer-perf-test's: random uppercase letters, so
/// compression ratios are comparable with runs of that tool.
pub fn payload_pool(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..PAYLOAD_POOL_BYTES)
        .map(|_| b'A' + rng.gen_range(0..26u8))
        .collect()
}

/// Writes the stamp that opens a record value.
pub fn write_stamp(out: &mut [u8; STAMP_LEN], run_id: u32, stamp_ns: u64) {
    out[0..4].copy_from_slice(&STAMP_TAG.to_be_bytes());
    out[4..8].copy_from_slice(&run_id.to_be_bytes());
    out[8..16].copy_from_slice(&stamp_ns.to_be_bytes());
}

pub fn parse_stamp(v: &[u8]) -> Option<(u32, u64)> {
    if v.len() < STAMP_LEN || v[0..4] != STAMP_TAG.to_be_bytes() {
        return None;
    }
    let run = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
    let mut s = [0u8; 8];
    s.copy_from_slice(&v[8..16]);
    Some((run, u64::from_be_bytes(s)))
}
