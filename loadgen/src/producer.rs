//! A pipelined producer: one connection, one writer thread that generates
//! records on schedule and batches them per partition, one reader thread
//! that matches responses to the requests in flight.
//!
//! Open-loop: with a target rate each record has a scheduled send time
//! (start + i / rate). A record that goes out late because the window was
//! full still measures its latency from the scheduled time, so a stalled
//! broker shows up in the percentiles (coordinated omission corrected).
//! Unbounded: the scheduled time is the moment the record was generated.

use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use rand::{Rng, SeedableRng};
use spindle_codec::kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use spindle_codec::kafka_protocol::protocol::Decodable;

use crate::batch::{write_stamp, BatchBuilder, ProducerIdentity, STAMP_LEN};
use crate::client::init_producer_id;
use crate::config::{Acks, KeyMode, ProducerConfig};
use crate::conn::{read_frame, response_correlation_id, Conn};
use crate::stats::{record, Hists, Shared};

/// Produce versions loadgen encodes by hand (non-flexible layout).
pub const PRODUCE_VERSIONS: (i16, i16) = (3, 8);
/// Distinct keys the round-robin key distribution cycles through.
pub const ROUND_ROBIN_KEYS: usize = 10_000;
/// Bytes of the pre-generated payload the record values are cut from.
const PAYLOAD_POOL_BYTES: usize = 1 << 20;

/// What one producer writes: its topic and how many partitions it has.
#[derive(Clone)]
pub struct ProducerTarget {
    pub topic: String,
    pub partitions: i32,
    pub addr: String,
}

#[derive(Clone)]
pub struct ProducerPlan {
    pub index: u32,
    pub target: ProducerTarget,
    pub config: ProducerConfig,
    pub record_size: usize,
    /// Records this producer sends (None = until told to stop).
    pub num_records: Option<u64>,
    /// Messages per second for this producer; <= 0 unbounded.
    pub rate: f64,
    pub stamp: bool,
}

struct BatchMeta {
    partition: i32,
    records: u32,
    stamps: Vec<u64>,
}

struct InFlight {
    correlation_id: i32,
    batches: Vec<BatchMeta>,
}

/// Counts requests in flight; the writer waits on it when the window is full.
struct Window {
    inflight: Mutex<usize>,
    cv: Condvar,
    max: usize,
}

impl Window {
    fn acquire(&self, shared: &Shared, broken: &Mutex<Option<String>>) -> Result<()> {
        let mut n = self
            .inflight
            .lock()
            .map_err(|_| anyhow!("window lock poisoned"))?;
        while *n >= self.max {
            if shared.stop_all.load(Ordering::Relaxed) {
                bail!("stopped");
            }
            if let Ok(b) = broken.lock() {
                if let Some(e) = b.as_ref() {
                    bail!("connection failed: {e}");
                }
            }
            let (g, _) = self
                .cv
                .wait_timeout(n, Duration::from_millis(100))
                .map_err(|_| anyhow!("window lock poisoned"))?;
            n = g;
        }
        *n += 1;
        Ok(())
    }

    fn release(&self) {
        if let Ok(mut n) = self.inflight.lock() {
            *n = n.saturating_sub(1);
        }
        self.cv.notify_all();
    }

    fn drained(&self, deadline: Instant) -> bool {
        let Ok(mut n) = self.inflight.lock() else {
            return false;
        };
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.cv.wait_timeout(n, deadline - now) {
                Ok((g, _)) => n = g,
                Err(_) => return false,
            }
        }
        true
    }
}

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

/// Payload like kafka-producer-perf-test's: random uppercase letters, so
/// compression ratios are comparable with runs of that tool.
pub fn payload_pool(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..PAYLOAD_POOL_BYTES)
        .map(|_| b'A' + rng.gen_range(0..26u8))
        .collect()
}

/// Encodes a Produce request (v3-v8) around already finished batches.
/// Returns the head pieces; batch i goes after `heads[i]`, and
/// `heads.last()` closes the request. The size prefix is included.
pub fn encode_produce(
    version: i16,
    correlation_id: i32,
    acks: i16,
    timeout_ms: i32,
    topic: &str,
    batches: &[(i32, &[u8])],
) -> Vec<Vec<u8>> {
    let mut heads: Vec<Vec<u8>> = Vec::with_capacity(batches.len() + 1);
    let mut h = Vec::with_capacity(64 + topic.len());
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&correlation_id.to_be_bytes());
    put_str(&mut h, crate::conn::CLIENT_ID);
    h.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id
    h.extend_from_slice(&acks.to_be_bytes());
    h.extend_from_slice(&timeout_ms.to_be_bytes());
    h.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut h, topic);
    h.extend_from_slice(&(batches.len() as i32).to_be_bytes());
    for (p, b) in batches {
        h.extend_from_slice(&p.to_be_bytes());
        h.extend_from_slice(&(b.len() as i32).to_be_bytes());
        heads.push(std::mem::take(&mut h));
    }
    heads.push(h);
    let total: usize = heads.iter().map(Vec::len).sum::<usize>()
        + batches.iter().map(|(_, b)| b.len()).sum::<usize>();
    let size = (total - 4) as i32;
    heads[0][0..4].copy_from_slice(&size.to_be_bytes());
    heads
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Writes all of `slices` (writev until done).
fn write_all_vectored(stream: &mut TcpStream, slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    let mut slices = slices;
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

struct Partitioner {
    keys: KeyMode,
    partitions: i32,
    sticky: i32,
    rr_keys: Vec<(Vec<u8>, i32)>,
    rr_next: usize,
    rng: rand::rngs::StdRng,
    key_buf: Vec<u8>,
}

impl Partitioner {
    fn new(keys: KeyMode, partitions: i32, index: u32) -> Partitioner {
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
    fn next(&mut self) -> (i32, Option<&[u8]>) {
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
    fn sealed(&mut self, partition: i32) {
        if self.keys == KeyMode::None && partition == self.sticky {
            self.sticky = (self.sticky + 1) % self.partitions.max(1);
        }
    }
}

struct Pending {
    builder: BatchBuilder,
    stamps: Vec<u64>,
    first_ns: u64,
}

/// Runs one producer to completion. Returns the records it sent.
pub fn run_producer(
    plan: ProducerPlan,
    shared: Arc<Shared>,
    ready: Arc<std::sync::Barrier>,
) -> Result<u64> {
    let conn = Conn::connect(&plan.target.addr);
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) => {
            ready.wait();
            return Err(e);
        }
    };
    let setup = (|| -> Result<(i16, Option<ProducerIdentity>)> {
        let version = conn.version(ApiKey::Produce, PRODUCE_VERSIONS)?;
        let producer = if plan.config.idempotence {
            Some(init_producer_id(&mut conn)?)
        } else {
            None
        };
        Ok((version, producer))
    })();
    ready.wait();
    let (version, producer) = setup?;
    let hists = shared.register();
    let stream = conn.stream.try_clone().context("clone producer socket")?;
    let window = Arc::new(Window {
        inflight: Mutex::new(0),
        cv: Condvar::new(),
        max: plan.config.max_in_flight,
    });
    let broken: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel::<InFlight>();
    // acks=0: no responses, no reader, no window.
    let tx = (plan.config.acks != Acks::None).then_some(tx);
    let reader = if plan.config.acks != Acks::None {
        let (shared, window, broken, hists) = (
            shared.clone(),
            window.clone(),
            broken.clone(),
            hists.clone(),
        );
        let record_size = plan.record_size as u64;
        Some(
            std::thread::Builder::new()
                .name(format!("prod-rd-{}", plan.index))
                .spawn(move || {
                    if let Err(e) =
                        read_responses(stream, rx, &shared, &window, &hists, version, record_size)
                    {
                        if let Ok(mut b) = broken.lock() {
                            *b = Some(format!("{e:#}"));
                        }
                        window.cv.notify_all();
                    }
                })?,
        )
    } else {
        drop(rx);
        None
    };
    let mut w = Writer {
        plan: &plan,
        shared: &shared,
        hists: &hists,
        stream: conn.stream,
        conn_next_id: 1 << 20,
        version,
        producer,
        sequences: vec![0; plan.target.partitions.max(1) as usize],
        window: &window,
        broken: &broken,
        tx,
        pending: (0..plan.target.partitions).map(|_| None).collect(),
        nonempty: VecDeque::new(),
        payload: payload_pool(u64::from(plan.index)),
        wall_base_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
            - (shared.now_ns() / 1_000_000) as i64,
    };
    let result = w.run();
    drop(w.tx.take());
    // Wait (bounded) for the acks of what was sent.
    let drained = window.drained(Instant::now() + Duration::from_secs(60));
    if !drained {
        shared.stop_all.store(true, Ordering::Relaxed);
    }
    if let Some(r) = reader {
        let _ = w.stream.shutdown(std::net::Shutdown::Both);
        let _ = r.join();
    }
    let sent = result?;
    if let Ok(b) = broken.lock() {
        if let Some(e) = b.as_ref() {
            bail!("producer {}: {e}", plan.index);
        }
    }
    if !drained {
        bail!("producer {}: acks did not arrive within 60 s", plan.index);
    }
    Ok(sent)
}

struct Writer<'a> {
    plan: &'a ProducerPlan,
    shared: &'a Shared,
    hists: &'a Mutex<Hists>,
    stream: TcpStream,
    conn_next_id: i32,
    version: i16,
    producer: Option<ProducerIdentity>,
    sequences: Vec<i32>,
    window: &'a Window,
    broken: &'a Mutex<Option<String>>,
    tx: Option<mpsc::Sender<InFlight>>,
    pending: Vec<Option<Pending>>,
    /// Partitions with a non-empty batch, oldest first.
    nonempty: VecDeque<i32>,
    payload: Vec<u8>,
    wall_base_ms: i64,
}

impl Writer<'_> {
    fn run(&mut self) -> Result<u64> {
        let cfg = self.plan.config.clone();
        let linger_ns = cfg.linger.as_nanos() as u64;
        let interval_ns = if self.plan.rate > 0.0 {
            1e9 / self.plan.rate
        } else {
            0.0
        };
        let start_ns = self.shared.now_ns();
        let mut partitioner =
            Partitioner::new(cfg.keys, self.plan.target.partitions, self.plan.index);
        let tail_len =
            self.plan
                .record_size
                .saturating_sub(if self.plan.stamp { STAMP_LEN } else { 0 });
        let mut sent: u64 = 0;
        let mut payload_off = 0usize;
        let mut stamp_buf = [0u8; STAMP_LEN];
        loop {
            if self.shared.stop_producing.load(Ordering::Relaxed)
                || self.shared.stop_all.load(Ordering::Relaxed)
            {
                break;
            }
            if self.plan.num_records.is_some_and(|n| sent >= n) {
                break;
            }
            let now = self.shared.now_ns();
            let stamp_ns = if interval_ns > 0.0 {
                let due = start_ns + (sent as f64 * interval_ns) as u64;
                if due > now {
                    // Idle until the next send: ship what lingered, then sleep.
                    self.flush_lingered(now, linger_ns, false)?;
                    let oldest = self.oldest_deadline(linger_ns);
                    let wake = oldest.map_or(due, |d| d.min(due));
                    if wake > now {
                        std::thread::sleep(Duration::from_nanos((wake - now).min(50_000_000)));
                    }
                    continue;
                }
                due
            } else {
                now
            };
            let (partition, key) = partitioner.next();
            let value_head: &[u8] = if self.plan.stamp {
                write_stamp(&mut stamp_buf, self.shared.run_id, stamp_ns);
                &stamp_buf
            } else {
                &[]
            };
            if payload_off + tail_len > self.payload.len() {
                payload_off = 0;
            }
            let tail = &self.payload[payload_off..payload_off + tail_len.min(self.payload.len())];
            payload_off += 7;
            let slot = &mut self.pending[partition as usize];
            let p = slot.get_or_insert_with(|| Pending {
                builder: BatchBuilder::new(cfg.compression, cfg.batch_bytes + 1024),
                stamps: Vec::with_capacity(cfg.batch_bytes / self.plan.record_size.max(1) + 1),
                first_ns: stamp_ns,
            });
            if p.builder.is_empty() {
                self.nonempty.push_back(partition);
            }
            p.builder.append(
                self.wall_base_ms + (stamp_ns / 1_000_000) as i64,
                key,
                value_head,
                tail,
            );
            p.stamps.push(stamp_ns);
            sent += 1;
            let counters = &self.shared.counters;
            counters.sent_msgs.fetch_add(1, Ordering::Relaxed);
            counters
                .sent_bytes
                .fetch_add(self.plan.record_size as u64, Ordering::Relaxed);
            if p.builder.len() >= cfg.batch_bytes {
                partitioner.sealed(partition);
                // A full batch goes now with every other batch that is ready.
                self.send(self.shared.now_ns(), linger_ns, true, Some(partition))?;
            } else if linger_ns == 0 || interval_ns == 0.0 {
                self.flush_lingered(self.shared.now_ns(), linger_ns, false)?;
            }
        }
        self.flush_lingered(u64::MAX, 0, true)?;
        Ok(sent)
    }

    fn oldest_deadline(&self, linger_ns: u64) -> Option<u64> {
        let p = *self.nonempty.front()?;
        self.pending[p as usize]
            .as_ref()
            .map(|b| b.first_ns + linger_ns)
    }

    /// Sends batches whose linger expired; with `all`, every batch.
    fn flush_lingered(&mut self, now: u64, linger_ns: u64, all: bool) -> Result<()> {
        while let Some(d) = self.oldest_deadline(linger_ns) {
            if !all && d > now {
                return Ok(());
            }
            self.send(now, linger_ns, all, None)?;
        }
        Ok(())
    }

    /// Sends one request with the ready batches: `must` (full), those past
    /// their linger, or all with `all`. Blocks while the window is full.
    fn send(&mut self, now: u64, linger_ns: u64, all: bool, must: Option<i32>) -> Result<()> {
        let mut chosen: Vec<i32> = Vec::new();
        let mut keep = VecDeque::new();
        while let Some(p) = self.nonempty.pop_front() {
            let ready = all
                || must == Some(p)
                || self.pending[p as usize].as_ref().is_some_and(|b| {
                    b.first_ns + linger_ns <= now || b.builder.len() >= self.plan.config.batch_bytes
                });
            if ready {
                chosen.push(p);
            } else {
                keep.push_back(p);
            }
        }
        self.nonempty = keep;
        if chosen.is_empty() {
            return Ok(());
        }
        if self.tx.is_some() {
            self.window.acquire(self.shared, self.broken)?;
        }
        let mut batches: Vec<(i32, bytes::BytesMut)> = Vec::with_capacity(chosen.len());
        let mut metas = Vec::with_capacity(chosen.len());
        for p in chosen {
            let Some(pend) = self.pending[p as usize].take() else {
                continue;
            };
            let records = pend.builder.count();
            let base_seq = if self.producer.is_some() {
                let s = self.sequences[p as usize];
                self.sequences[p as usize] = s.wrapping_add(records) & i32::MAX;
                s
            } else {
                -1
            };
            let bytes = pend.builder.finish(self.producer, base_seq)?;
            batches.push((p, bytes));
            metas.push(BatchMeta {
                partition: p,
                records: records as u32,
                stamps: pend.stamps,
            });
        }
        let id = self.conn_next_id;
        self.conn_next_id = self.conn_next_id.wrapping_add(1).max(1);
        let refs: Vec<(i32, &[u8])> = batches.iter().map(|(p, b)| (*p, &b[..])).collect();
        let heads = encode_produce(
            self.version,
            id,
            self.plan.config.acks.wire(),
            self.plan.config.request_timeout_ms,
            &self.plan.target.topic,
            &refs,
        );
        let mut slices = Vec::with_capacity(heads.len() * 2);
        for (i, h) in heads.iter().enumerate() {
            slices.push(IoSlice::new(h));
            if let Some((_, b)) = refs.get(i) {
                slices.push(IoSlice::new(b));
            }
        }
        if let Some(tx) = &self.tx {
            // Queue the metadata before the bytes leave, so the reader
            // always finds the request its response answers.
            tx.send(InFlight {
                correlation_id: id,
                batches: metas,
            })
            .map_err(|_| anyhow!("response reader stopped"))?;
            write_all_vectored(&mut self.stream, &mut slices).context("send produce request")?;
        } else {
            write_all_vectored(&mut self.stream, &mut slices).context("send produce request")?;
            // acks=0: the send is the acknowledgement (as in the Java client).
            let done = self.shared.now_ns();
            ack_batches(
                self.shared,
                self.hists,
                &metas,
                done,
                self.plan.record_size as u64,
            );
        }
        Ok(())
    }
}

fn ack_batches(
    shared: &Shared,
    hists: &Mutex<Hists>,
    metas: &[BatchMeta],
    now: u64,
    record_size: u64,
) {
    let mut measured = 0u64;
    if let Ok(mut h) = hists.lock() {
        let h = &mut *h;
        for m in metas {
            for &s in &m.stamps {
                let in_window = shared.measuring(s);
                measured += u64::from(in_window);
                record(
                    &mut h.publish_interval,
                    &mut h.publish_total,
                    now.saturating_sub(s) / 1000,
                    in_window,
                );
            }
        }
    }
    let n: u64 = metas.iter().map(|m| u64::from(m.records)).sum();
    let c = &shared.counters;
    c.acked_msgs.fetch_add(n, Ordering::Relaxed);
    c.acked_bytes.fetch_add(n * record_size, Ordering::Relaxed);
    c.measured_acked_msgs.fetch_add(measured, Ordering::Relaxed);
    c.measured_acked_bytes
        .fetch_add(measured * record_size, Ordering::Relaxed);
}

fn read_responses(
    mut stream: TcpStream,
    rx: mpsc::Receiver<InFlight>,
    shared: &Shared,
    window: &Window,
    hists: &Mutex<Hists>,
    version: i16,
    record_size: u64,
) -> Result<()> {
    while let Ok(req) = rx.recv() {
        let mut body = read_frame(&mut stream)?;
        let now = shared.now_ns();
        let id = response_correlation_id(&mut body, ApiKey::Produce, version)?;
        if id != req.correlation_id {
            bail!(
                "produce response for correlation id {id}, expected {}",
                req.correlation_id
            );
        }
        let resp = ProduceResponse::decode(&mut body, version)
            .map_err(|e| anyhow!("decode produce response: {e}"))?;
        let mut ok = Vec::with_capacity(req.batches.len());
        let mut failed = 0u64;
        let mut first_error = None;
        for m in req.batches {
            let err = resp
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == m.partition)
                .map_or(-1, |p| p.error_code);
            if err == 0 {
                ok.push(m);
            } else {
                failed += u64::from(m.records);
                first_error.get_or_insert(err);
            }
        }
        ack_batches(shared, hists, &ok, now, record_size);
        if failed > 0 {
            shared.counters.errors.fetch_add(failed, Ordering::Relaxed);
            if let Some(e) = first_error {
                crate::report::note_error(&format!("produce error code {e}"));
            }
        }
        window.release();
    }
    Ok(())
}

/// Checks produce requests decode with kafka_protocol (the shared codec).
#[allow(dead_code)]
fn decode_with_codec(frame: &[u8], version: i16) -> Result<ProduceRequest> {
    let mut b = bytes::Bytes::copy_from_slice(&frame[4..]);
    let _h = spindle_codec::kafka_protocol::messages::RequestHeader::decode(&mut b, 1)
        .map_err(|e| anyhow!("header: {e}"))?;
    ProduceRequest::decode(&mut b, version).map_err(|e| anyhow!("body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Compression;

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
    fn produce_request_decodes_with_kafka_protocol() {
        let mut b1 = BatchBuilder::new(Compression::None, 1024);
        b1.append(1, None, b"hello", b"");
        let b1 = b1.finish(None, -1).unwrap();
        let mut b2 = BatchBuilder::new(Compression::Lz4, 1024);
        b2.append(2, Some(b"k"), b"world", b"!");
        let b2 = b2.finish(None, -1).unwrap();
        for version in 3..=8 {
            let heads = encode_produce(version, 77, -1, 1500, "bench", &[(3, &b1), (9, &b2)]);
            let mut frame = Vec::new();
            frame.extend_from_slice(&heads[0]);
            frame.extend_from_slice(&b1);
            frame.extend_from_slice(&heads[1]);
            frame.extend_from_slice(&b2);
            frame.extend_from_slice(&heads[2]);
            assert_eq!(
                i32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize,
                frame.len() - 4
            );
            let req = decode_with_codec(&frame, version).unwrap();
            assert_eq!(req.acks, -1);
            assert_eq!(req.timeout_ms, 1500);
            assert_eq!(req.topic_data.len(), 1);
            let t = &req.topic_data[0];
            assert_eq!(t.name.0.as_str(), "bench");
            assert_eq!(t.partition_data.len(), 2);
            assert_eq!(t.partition_data[0].index, 3);
            assert_eq!(t.partition_data[0].records.as_deref(), Some(&b1[..]));
            assert_eq!(t.partition_data[1].index, 9);
            assert_eq!(t.partition_data[1].records.as_deref(), Some(&b2[..]));
        }
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
