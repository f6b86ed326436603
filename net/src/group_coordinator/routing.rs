//! Which shard coordinates a group: the owner of partition
//! `hash(group id) % P` of the offsets topic, as Kafka routes it.

use super::OFFSETS_TOPIC;
use crate::catalog::Snapshot;

/// Java's `String.hashCode` of the UTF-16 code units, as Kafka hashes
/// group ids to partitions.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The offsets partition of a group and the shard owning it.
pub fn route(snap: &Snapshot, group_id: &str) -> Option<(i32, u32)> {
    let t = snap.topic(OFFSETS_TOPIC)?;
    let n = t.owners.len() as i32;
    if n == 0 {
        return None;
    }
    // Kafka's Utils.abs: i32::MIN maps to 0.
    let h = java_hash(group_id);
    let p = if h == i32::MIN { 0 } else { h.abs() % n };
    Some((p, t.owners[p as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hash_like_kafka() {
        // Java: "group".hashCode() == 98629247, "" == 0.
        assert_eq!(java_hash("group"), 98_629_247);
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("console-consumer-12345"), {
            let mut h: i32 = 0;
            for c in "console-consumer-12345".chars() {
                h = h.wrapping_mul(31).wrapping_add(c as i32);
            }
            h
        });
    }
}
