//! A pipelined producer: one connection, one writer thread that generates
//! records on schedule, batches them per partition and writes Produce
//! requests (codec's encoder, the batches sent with writev from where they
//! were built), one reader thread that matches responses to the requests
//! in flight. The partitioner, the in-flight window and the record values
//! have modules of their own.
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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use spindle_codec::kafka_protocol::messages::{ApiKey, ProduceResponse};
use spindle_codec::kafka_protocol::protocol::Decodable;
use spindle_codec::produce::{
    encode_produce_frame, produce_pieces, ProducePartition, ProduceRequest, ProduceTopic,
};

use crate::batch::{BatchBuilder, ProducerIdentity};
use crate::client::init_producer_id;
use crate::config::{Acks, ProducerConfig};
use crate::conn::{read_frame, response_correlation_id, Conn, CLIENT_ID};
use crate::partitioner::Partitioner;
use crate::payload::{payload_pool, write_stamp, STAMP_LEN};
use crate::stats::{record, Hists, Shared};
use crate::window::Window;

/// Produce versions loadgen sends (non-flexible layout).
pub const PRODUCE_VERSIONS: (i16, i16) = (3, 8);

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
    let window = Arc::new(Window::new(plan.config.max_in_flight));
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
                        window.wake();
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
        let mut partitions = Vec::with_capacity(chosen.len());
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
            partitions.push(ProducePartition {
                index: p,
                records: Some(pend.builder.finish(self.producer, base_seq)?),
            });
            metas.push(BatchMeta {
                partition: p,
                records: records as u32,
                stamps: pend.stamps,
            });
        }
        let id = self.conn_next_id;
        self.conn_next_id = self.conn_next_id.wrapping_add(1).max(1);
        let req = ProduceRequest {
            transactional_id: None,
            acks: self.plan.config.acks.wire(),
            timeout_ms: self.plan.config.request_timeout_ms,
            topics: vec![ProduceTopic {
                name: self.plan.target.topic.clone(),
                topic_id: [0; 16],
                partitions,
            }],
        };
        let mut head = BytesMut::with_capacity(64 + req.topics[0].name.len() + 8 * metas.len());
        let cuts = encode_produce_frame(id, CLIENT_ID, &req, self.version, &mut head);
        let mut slices: Vec<IoSlice<'_>> = produce_pieces(&head, &cuts, &req)
            .into_iter()
            .map(IoSlice::new)
            .collect();
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
