//! `spindle produce TOPIC`: each line of standard input is one record
//! (`--key-sep` splits a key off the front), with the same `--header`s.
//! Lines are batched: a batch is sent when it is full or when no new line
//! came for a few milliseconds, so a pipe goes out in large batches and
//! a person typing sees each line sent at once. Partitions follow Kafka's
//! default partitioner: murmur2 of the key, and without a key one
//! partition per batch in turn. The summary (records and offsets per
//! partition) is printed at the end.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use spindle_codec::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use spindle_codec::kafka_protocol::messages::ProduceRequest;

use crate::cli::ProduceArgs;
use crate::client::{topic_name, Client, ClusterView};
use crate::error::{AdminError, Result};
use crate::output::{print_json, Table};
use crate::records::{compression, encode_batch, Outgoing};
use crate::Ctx;

/// A batch is sent at this many records or bytes, whichever comes first.
const BATCH_RECORDS_MAX: usize = 10_000;
const BATCH_BYTES_MAX: usize = 1 << 20;
/// How long a batch waits for the next line before it is sent.
const LINGER: Duration = Duration::from_millis(10);
/// Lines read ahead of the sender.
const LINES_QUEUED_MAX: usize = 4096;
/// A topic created on first use may take a moment to get leaders.
const LEADER_WAIT_TRIES: u32 = 50;

#[derive(Debug, Default, Serialize)]
struct PartitionSummary {
    partition: i32,
    records: u64,
    /// `None` with acks=0: the broker does not answer.
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Summary {
    topic: String,
    records: u64,
    partitions: Vec<PartitionSummary>,
}

pub fn run(ctx: &Ctx, a: ProduceArgs) -> Result<()> {
    let mut client = ctx.connect()?;
    let view = leaders_of(&mut client, &a.topic)?;
    let partitions = view.topic(&a.topic)?.partitions.len() as i32;
    if let Some(p) = a.partition {
        view.topic(&a.topic)?.leader(p)?;
    }
    let lines = read_lines();
    let mut sent: BTreeMap<i32, PartitionSummary> = BTreeMap::new();
    let mut next_unkeyed = 0i32;
    while let Some(batch) = next_batch(&lines, &a)? {
        let mut by_partition: BTreeMap<i32, Vec<Outgoing>> = BTreeMap::new();
        for r in batch {
            let p = match (a.partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(k)) => key_partition(k, partitions),
                (None, None) => next_unkeyed,
            };
            by_partition.entry(p).or_default().push(r);
        }
        next_unkeyed = (next_unkeyed + 1) % partitions.max(1);
        for (p, records) in by_partition {
            let offsets = send(ctx, &mut client, &view, &a, p, &records).map_err(|e| {
                let done: u64 = sent.values().map(|s| s.records).sum();
                match done {
                    0 => e,
                    n => AdminError::Failed(format!("{e} ({n} records were produced before)")),
                }
            })?;
            let s = sent.entry(p).or_insert_with(|| PartitionSummary {
                partition: p,
                ..Default::default()
            });
            s.records += records.len() as u64;
            if let Some(base) = offsets {
                s.first_offset.get_or_insert(base);
                s.last_offset = Some(base + records.len() as i64 - 1);
            }
        }
    }
    let summary = Summary {
        topic: a.topic.clone(),
        records: sent.values().map(|s| s.records).sum(),
        partitions: sent.into_values().collect(),
    };
    if ctx.json() {
        return print_json(&summary);
    }
    let mut t = Table::new(&["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
    let opt = |o: Option<i64>| o.map_or_else(|| "-".to_string(), |o| o.to_string());
    for s in &summary.partitions {
        t.row(vec![
            s.partition.to_string(),
            s.records.to_string(),
            opt(s.first_offset),
            opt(s.last_offset),
        ]);
    }
    t.print()
}

/// Metadata for `topic`, created on first use where the broker allows it,
/// once every partition has a leader.
fn leaders_of(client: &mut Client, topic: &str) -> Result<ClusterView> {
    let topics = [topic.to_string()];
    let mut tries = 0;
    loop {
        let view = client.metadata(Some(&topics), true)?;
        let ready = match view.topic(topic) {
            Ok(t) => !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0),
            // LEADER_NOT_AVAILABLE: just created.
            Err(AdminError::Kafka { code: 5, .. }) => false,
            Err(e) => return Err(e),
        };
        tries += 1;
        if ready || tries >= LEADER_WAIT_TRIES {
            view.topic(topic)?;
            return Ok(view);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Standard input, line by line, on a thread of its own, so that a batch
/// can wait for the next line with a timeout.
fn read_lines() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(LINES_QUEUED_MAX);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// The next batch of records; `None` at the end of the input.
fn next_batch(
    lines: &mpsc::Receiver<std::io::Result<Vec<u8>>>,
    a: &ProduceArgs,
) -> Result<Option<Vec<Outgoing>>> {
    let stdin_err = |e: std::io::Error| AdminError::Failed(format!("read standard input: {e}"));
    let Ok(first) = lines.recv() else {
        return Ok(None);
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut batch = vec![record(first.map_err(stdin_err)?, a, now_ms)];
    let mut bytes = batch[0].value.len();
    while batch.len() < BATCH_RECORDS_MAX && bytes < BATCH_BYTES_MAX {
        match lines.recv_timeout(LINGER) {
            Ok(line) => {
                let r = record(line.map_err(stdin_err)?, a, now_ms);
                bytes += r.value.len() + r.key.as_ref().map_or(0, Bytes::len);
                batch.push(r);
            }
            Err(_) => break,
        }
    }
    Ok(Some(batch))
}

fn record(line: Vec<u8>, a: &ProduceArgs, now_ms: i64) -> Outgoing {
    let line = Bytes::from(line);
    let (key, value) = match a.key_sep.as_deref().map(str::as_bytes) {
        Some(sep) if !sep.is_empty() => match find(&line, sep) {
            Some(at) => (Some(line.slice(..at)), line.slice(at + sep.len()..)),
            None => (None, line),
        },
        _ => (None, line),
    };
    Outgoing {
        key,
        value,
        headers: a
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
            .collect(),
        timestamp_ms: now_ms,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends one batch to partition `p`'s leader; the base offset it got, or
/// `None` with acks=0.
fn send(
    ctx: &Ctx,
    client: &mut Client,
    view: &ClusterView,
    a: &ProduceArgs,
    p: i32,
    records: &[Outgoing],
) -> Result<Option<i64>> {
    let batch = encode_batch(records, compression(a.compression))?;
    let req = ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(a.acks)
        .with_timeout_ms(i32::try_from(ctx.timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(&a.topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(batch))])]);
    let conn = client.broker(view.topic(&a.topic)?.leader(p)?)?;
    if a.acks == 0 {
        conn.send(&req)?;
        return Ok(None);
    }
    let resp = conn.call(&req)?;
    let part = resp
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .find(|r| r.index == p)
        .ok_or_else(|| AdminError::Protocol(format!("Produce: no answer for partition {p}")))?;
    AdminError::check(part.error_code, part.error_message.as_deref(), || {
        format!("produce to {}/{p}", a.topic)
    })?;
    Ok(Some(part.base_offset))
}

/// Kafka's default partitioner for keyed records: murmur2 of the key,
/// positive, modulo the partitions. (The same function as loadgen's
/// partitioner; the two crates share only the codec.)
pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        h = h.wrapping_mul(M) ^ (k ^ (k >> 24)).wrapping_mul(M);
    }
    let tail = chunks.remainder();
    for (i, b) in tail.iter().enumerate().rev() {
        h ^= u32::from(*b) << (8 * i);
    }
    if !tail.is_empty() {
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    (h ^ (h >> 15)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }
}
