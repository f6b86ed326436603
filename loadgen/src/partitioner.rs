//! Which partition each record goes to, as Kafka's default partitioner
//! decides: keyed records to murmur2(key) % partitions, records without a
//! key stick to one partition until its batch is sealed.

use rand::{Rng, SeedableRng};

use crate::config::KeyMode;

/// Distinct keys the round-robin key distribution cycles through.
pub const ROUND_ROBIN_KEYS: usize = 10_000;

/// Kafka's murmur2, as its default partitioner uses it for keyed records.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let t = chunks.remainder();
    if t.len() >= 3 {
        h ^= u32::from(t[2]) << 16;
    }
    if t.len() >= 2 {
        h ^= u32::from(t[1]) << 8;
    }
    if !t.is_empty() {
        h ^= u32::from(t[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Picks each record's partition and key: sticky without keys (fill one
/// partition's batch, then move on), else murmur2 of the key.
pub struct Partitioner {
    keys: KeyMode,
    partitions: i32,
    sticky: i32,
    rr_keys: Vec<(Vec<u8>, i32)>,
    rr_next: usize,
    rng: rand::rngs::StdRng,
    key_buf: Vec<u8>,
}

impl Partitioner {
    pub fn new(keys: KeyMode, partitions: i32, index: u32) -> Partitioner {
        let rr_keys = if keys == KeyMode::RoundRobin {
            (0..ROUND_ROBIN_KEYS)
                .map(|i| {
                    let k = format!("key-{i}").into_bytes();
                    let p = key_partition(&k, partitions);
                    (k, p)
                })
                .collect()
        } else {
            Vec::new()
        };
        Partitioner {
            keys,
            partitions,
            sticky: (index as i32) % partitions.max(1),
            rr_keys,
            rr_next: index as usize,
            rng: rand::rngs::StdRng::seed_from_u64(0x5eed ^ u64::from(index)),
            key_buf: Vec::with_capacity(16),
        }
    }

    /// Picks the partition and key of the next record.
    pub fn next(&mut self) -> (i32, Option<&[u8]>) {
        match self.keys {
            KeyMode::None => (self.sticky, None),
            KeyMode::RoundRobin => {
                let i = self.rr_next % self.rr_keys.len();
                self.rr_next = self.rr_next.wrapping_add(1);
                let (k, p) = &self.rr_keys[i];
                (*p, Some(k.as_slice()))
            }
            KeyMode::Random => {
                let v: u64 = self.rng.gen();
                self.key_buf.clear();
                self.key_buf
                    .extend_from_slice(format!("{v:016x}").as_bytes());
                let p = key_partition(&self.key_buf, self.partitions);
                (p, Some(self.key_buf.as_slice()))
            }
        }
    }

    /// Sticky partitioning (no keys): move on once a batch is sealed.
    pub fn sealed(&mut self, partition: i32) {
        if self.keys == KeyMode::None && partition == self.sticky {
            self.sticky = (self.sticky + 1) % self.partitions.max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's UtilsTest.
    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn partitioner_spreads_keys_and_sticks_without() {
        let mut p = Partitioner::new(KeyMode::None, 4, 1);
        assert_eq!(p.next().0, 1);
        assert_eq!(p.next().0, 1);
        p.sealed(1);
        assert_eq!(p.next().0, 2);
        let mut rr = Partitioner::new(KeyMode::RoundRobin, 16, 0);
        let mut seen = [0u32; 16];
        for _ in 0..ROUND_ROBIN_KEYS {
            seen[rr.next().0 as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0));
        let mut r = Partitioner::new(KeyMode::Random, 16, 0);
        for _ in 0..100 {
            let (part, key) = r.next();
            let key = key.unwrap().to_vec();
            assert_eq!(key_partition(&key, 16), part);
        }
    }
}
