//! Operator metrics in the Prometheus text exposition format (0.0.4),
//! served over plain HTTP at `/metrics` by a helper thread
//! (`--metrics-listen`).
//!
//! Cheap on the hot path: every counter is a `Cell` owned by one shard
//! (no atomics, no sharing). A scrape asks each shard, over a bounded
//! flume channel that a task on the shard awaits, for a [`Report`]: its
//! counters, its partitions' offsets and sizes, its cache and write-behind
//! figures, and whatever collectors were registered on it. The HTTP thread
//! merges the reports (samples with the same name and labels are summed)
//! and renders them. The shard thread never blocks on the scraper.
//!
//! Registration point: [`ShardMetrics::register_collector`] adds a closure
//! run on that shard at every scrape, for metrics whose state lives there
//! (consumer-group lag, for one: the coordinator registers a collector
//! on the shard that owns the group).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use spindle_codec::kafka_protocol::messages::ApiKey;
use tracing::{debug, warn};

use crate::constants::{METRICS_IO_TIMEOUT_MS, METRICS_QUEUE_CAPACITY, METRICS_REQUEST_BYTES_MAX};
use crate::shard::Shard;

/// Upper bounds of the request latency histogram, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];
/// Counter slots for API keys: keys 0..API_SLOTS-1 have their own, any
/// other key shares the last one (labelled `unknown`).
const API_SLOTS: usize = 128;

/// Why the broker closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A size prefix out of range.
    BadFrame,
    /// A request that cannot be served (unknown API, version, undecodable).
    BadRequest,
    /// Nothing happened for `--connections-max-idle-ms`.
    Idle,
    /// A request did not arrive whole within `--request-read-timeout-ms`.
    RequestTimeout,
    /// The client stopped reading for `--send-stall-timeout-ms`.
    SendStall,
}

const CLOSE_REASONS: [CloseReason; 5] = [
    CloseReason::BadFrame,
    CloseReason::BadRequest,
    CloseReason::Idle,
    CloseReason::RequestTimeout,
    CloseReason::SendStall,
];

impl CloseReason {
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::BadFrame => "bad_frame",
            CloseReason::BadRequest => "bad_request",
            CloseReason::Idle => "idle",
            CloseReason::RequestTimeout => "request_timeout",
            CloseReason::SendStall => "send_stall",
        }
    }
}

#[derive(Default)]
struct ApiCounters {
    count: Cell<u64>,
    sum_us: Cell<u64>,
    /// Per bucket (not cumulative); the last is above every bound.
    buckets: [Cell<u64>; LATENCY_BUCKETS_US.len() + 1],
}

/// Collects samples on its shard at scrape time.
pub type Collector = Box<dyn Fn(&mut Vec<Family>)>;

/// One shard's counters; touched only on that shard.
pub struct ShardMetrics {
    api: Box<[ApiCounters]>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    accepted: Cell<u64>,
    rejected_total: Cell<u64>,
    rejected_per_ip: Cell<u64>,
    closed: [Cell<u64>; CLOSE_REASONS.len()],
    collectors: RefCell<Vec<Collector>>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            api: (0..API_SLOTS).map(|_| ApiCounters::default()).collect(),
            bytes_in: Cell::new(0),
            bytes_out: Cell::new(0),
            accepted: Cell::new(0),
            rejected_total: Cell::new(0),
            rejected_per_ip: Cell::new(0),
            closed: Default::default(),
            collectors: RefCell::new(Vec::new()),
        }
    }
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

fn api_slot(api_key: i16) -> usize {
    usize::try_from(api_key)
        .ok()
        .filter(|k| *k < API_SLOTS - 1)
        .unwrap_or(API_SLOTS - 1)
}

impl ShardMetrics {
    /// A request of `api_key` answered (or dropped) `elapsed` after it was
    /// read.
    pub fn request_done(&self, api_key: i16, elapsed: Duration) {
        let a = &self.api[api_slot(api_key)];
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        add(&a.count, 1);
        add(&a.sum_us, us);
        let b = LATENCY_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        add(&a.buckets[b], 1);
    }

    pub fn bytes_in(&self, n: u64) {
        add(&self.bytes_in, n);
    }

    pub fn bytes_out(&self, n: u64) {
        add(&self.bytes_out, n);
    }

    pub fn accepted(&self) {
        add(&self.accepted, 1);
    }

    pub fn rejected(&self, why: crate::transport::limits::Rejected) {
        match why {
            crate::transport::limits::Rejected::Total => add(&self.rejected_total, 1),
            crate::transport::limits::Rejected::PerIp => add(&self.rejected_per_ip, 1),
        }
    }

    pub fn closed(&self, why: CloseReason) {
        let i = CLOSE_REASONS.iter().position(|r| *r == why).unwrap_or(0);
        add(&self.closed[i], 1);
    }

    /// Runs `collector` on this shard at every scrape; its families are
    /// merged with the other shards' (samples of one name and label set
    /// are summed, so give shard-specific state distinct labels).
    pub fn register_collector(&self, collector: Collector) {
        self.collectors.borrow_mut().push(collector);
    }

    fn run_collectors(&self, out: &mut Vec<Family>) {
        for f in self.collectors.borrow().iter() {
            f(out);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One sample: `name` is the family name plus any suffix (`_bucket`,
/// `_sum`, `_count` for histograms).
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A metric family as the exposition format has it.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &str, kind: Kind, help: &str) -> Family {
        Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            samples: Vec::new(),
        }
    }

    pub fn sample(mut self, labels: &[(&str, &str)], value: f64) -> Family {
        self.push(labels, value);
        self
    }

    pub fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let name = self.name.clone();
        self.push_suffixed(&name, labels, value);
    }

    fn push_suffixed(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.samples.push(Sample {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        });
    }
}

/// What one shard answers a scrape with.
pub type Report = Vec<Family>;

fn api_label(slot: usize) -> String {
    match i16::try_from(slot).ok().map(ApiKey::try_from) {
        Some(Ok(k)) if slot < API_SLOTS - 1 => format!("{k:?}"),
        _ => "unknown".to_string(),
    }
}

/// The report of the shard this runs on.
pub fn report(shard: &Shard) -> Report {
    let m = &shard.metrics;
    let mut out = Vec::new();
    request_families(m, &mut out);
    let c = |name: &str, help: &str, v: u64| {
        Family::new(name, Kind::Counter, help).sample(&[], v as f64)
    };
    out.push(c(
        "spindle_received_bytes_total",
        "Bytes read from client connections.",
        m.bytes_in.get(),
    ));
    out.push(c(
        "spindle_sent_bytes_total",
        "Response bytes written to client connections (sendfile included).",
        m.bytes_out.get(),
    ));
    connection_families(shard, &mut out);
    partition_families(shard, &mut out);
    m.run_collectors(&mut out);
    out
}

fn request_families(m: &ShardMetrics, out: &mut Report) {
    let mut count = Family::new(
        "spindle_requests_total",
        Kind::Counter,
        "Requests answered (or dropped, for acks=0 and closes), by API.",
    );
    let mut hist = Family::new(
        "spindle_request_duration_seconds",
        Kind::Histogram,
        "Time from a request read to its response written, by API.",
    );
    for (slot, a) in m.api.iter().enumerate() {
        let served = i16::try_from(slot)
            .ok()
            .and_then(|k| ApiKey::try_from(k).ok())
            .and_then(crate::api::registry::served)
            .is_some();
        if !served && a.count.get() == 0 {
            continue;
        }
        let api = api_label(slot);
        let labels = [("api", api.as_str())];
        count.push(&labels, a.count.get() as f64);
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += a.buckets[i].get();
            let le = format!("{}", *le as f64 / 1e6);
            hist.push_suffixed(
                "spindle_request_duration_seconds_bucket",
                &[("api", &api), ("le", &le)],
                cumulative as f64,
            );
        }
        hist.push_suffixed(
            "spindle_request_duration_seconds_bucket",
            &[("api", &api), ("le", "+Inf")],
            a.count.get() as f64,
        );
        hist.push_suffixed(
            "spindle_request_duration_seconds_sum",
            &labels,
            a.sum_us.get() as f64 / 1e6,
        );
        hist.push_suffixed(
            "spindle_request_duration_seconds_count",
            &labels,
            a.count.get() as f64,
        );
    }
    out.push(count);
    out.push(hist);
}

fn connection_families(shard: &Shard, out: &mut Report) {
    let m = &shard.metrics;
    let live = shard.conns.0[shard.id as usize].load(std::sync::atomic::Ordering::Relaxed);
    out.push(
        Family::new(
            "spindle_connections",
            Kind::Gauge,
            "Live client connections.",
        )
        .sample(&[], live as f64),
    );
    out.push(
        Family::new(
            "spindle_connections_accepted_total",
            Kind::Counter,
            "Client connections accepted.",
        )
        .sample(&[], m.accepted.get() as f64),
    );
    out.push(
        Family::new(
            "spindle_connections_rejected_total",
            Kind::Counter,
            "Client connections closed at accept, by the limit that was reached.",
        )
        .sample(
            &[("reason", "max_connections")],
            m.rejected_total.get() as f64,
        )
        .sample(
            &[("reason", "max_connections_per_ip")],
            m.rejected_per_ip.get() as f64,
        ),
    );
    let mut closed = Family::new(
        "spindle_connections_closed_total",
        Kind::Counter,
        "Client connections the broker closed, by reason.",
    );
    for (i, r) in CLOSE_REASONS.iter().enumerate() {
        closed.push(&[("reason", r.label())], m.closed[i].get() as f64);
    }
    out.push(closed);
    let max = shard.config.inflight_request_bytes_per_shard;
    let held = max.saturating_sub(shard.request_bytes.available());
    out.push(
        Family::new(
            "spindle_inflight_request_bytes",
            Kind::Gauge,
            "Request bytes read and not yet answered.",
        )
        .sample(&[], held as f64),
    );
    out.push(
        Family::new(
            "spindle_inflight_request_budget_bytes",
            Kind::Gauge,
            "The in-flight request budget (--inflight-request-mb, all shards).",
        )
        .sample(&[], max as f64),
    );
}

fn partition_families(shard: &Shard, out: &mut Report) {
    let gauge = |name: &str, help: &str| Family::new(name, Kind::Gauge, help);
    let mut size = gauge(
        "spindle_partition_log_size_bytes",
        "Bytes in the partition's segments.",
    );
    let mut start = gauge("spindle_partition_log_start_offset", "First offset kept.");
    let mut end = gauge(
        "spindle_partition_log_end_offset",
        "Next offset to be assigned.",
    );
    let mut hw = gauge(
        "spindle_partition_high_watermark",
        "Next offset readers can see (durable under flush=batch).",
    );
    let mut poisoned = gauge(
        "spindle_partition_poisoned",
        "1 if a failed write or fsync stopped the partition's appends until reopened.",
    );
    for ((topic, p), log) in shard.open_logs() {
        let p = p.to_string();
        let l = [("topic", topic.as_str()), ("partition", p.as_str())];
        size.push(&l, log.size_bytes() as f64);
        start.push(&l, log.log_start_offset() as f64);
        end.push(&l, log.log_end_offset() as f64);
        hw.push(&l, log.high_watermark() as f64);
        poisoned.push(&l, if log.is_poisoned() { 1.0 } else { 0.0 });
    }
    out.extend([size, start, end, hw, poisoned]);
    let cache = shard.cache_stats();
    out.push(
        Family::new(
            "spindle_batch_cache_hits_total",
            Kind::Counter,
            "Reads served from the batch cache.",
        )
        .sample(&[], cache.hits as f64),
    );
    out.push(
        Family::new(
            "spindle_batch_cache_misses_total",
            Kind::Counter,
            "Reads the batch cache could not serve.",
        )
        .sample(&[], cache.misses as f64),
    );
    out.push(
        gauge(
            "spindle_batch_cache_bytes",
            "Bytes held by the batch caches.",
        )
        .sample(&[], cache.bytes as f64),
    );
    let wb = shard.write_budget();
    out.push(
        gauge(
            "spindle_write_behind_bytes",
            "Appended bytes not yet handed to the disk.",
        )
        .sample(&[], wb.used_bytes() as f64),
    );
    out.push(
        gauge(
            "spindle_write_behind_budget_bytes",
            "The write-behind budget (--write-behind-mb, all shards).",
        )
        .sample(&[], wb.bytes_max() as f64),
    );
}

/// Requests the HTTP thread sends a shard.
pub type ScrapeTx = flume::Sender<flume::Sender<Report>>;
pub type ScrapeRx = flume::Receiver<flume::Sender<Report>>;

pub fn scrape_channel() -> (ScrapeTx, ScrapeRx) {
    flume::bounded(METRICS_QUEUE_CAPACITY)
}

/// Answers scrapes on the current shard until the HTTP thread is gone.
pub fn serve_scrapes(shard: Rc<Shard>, rx: ScrapeRx) {
    glommio::spawn_local(async move {
        while let Ok(reply) = rx.recv_async().await {
            let _ = reply.send(report(&shard));
        }
    })
    .detach();
}

/// A sample's full name and labels.
type SampleKey = (String, Vec<(String, String)>);

/// Merges the shards' reports: families by name in first-seen order,
/// samples of one name and label set summed.
pub fn merge(reports: Vec<Report>) -> Vec<Family> {
    let mut order: Vec<String> = Vec::new();
    let mut fams: BTreeMap<String, (Family, BTreeMap<SampleKey, f64>)> = BTreeMap::new();
    for report in reports {
        for f in report {
            let entry = fams.entry(f.name.clone()).or_insert_with(|| {
                order.push(f.name.clone());
                (
                    Family {
                        samples: Vec::new(),
                        ..f.clone()
                    },
                    BTreeMap::new(),
                )
            });
            for s in f.samples {
                let key = (s.name.clone(), s.labels.clone());
                if !entry.1.contains_key(&key) {
                    entry.0.samples.push(s.clone());
                }
                *entry.1.entry(key).or_insert(0.0) += s.value;
            }
        }
    }
    order
        .into_iter()
        .filter_map(|name| fams.remove(&name))
        .map(|(mut f, sums)| {
            for s in &mut f.samples {
                s.value = sums[&(s.name.clone(), s.labels.clone())];
            }
            f
        })
        .collect()
}

/// Lifetime hit ratio of the batch caches, from the merged counters.
fn cache_ratio(fams: &[Family]) -> Option<Family> {
    let total = |name: &str| {
        fams.iter()
            .find(|f| f.name == name)
            .map(|f| f.samples.iter().map(|s| s.value).sum::<f64>())
    };
    let (hits, misses) = (
        total("spindle_batch_cache_hits_total")?,
        total("spindle_batch_cache_misses_total")?,
    );
    let ratio = if hits + misses > 0.0 {
        hits / (hits + misses)
    } else {
        0.0
    };
    Some(
        Family::new(
            "spindle_batch_cache_hit_ratio",
            Kind::Gauge,
            "Batch cache hits over lookups since start.",
        )
        .sample(&[], ratio),
    )
}

/// Consumer-group lag per partition: the partition's high watermark
/// minus the group's committed offset (partitions and groups may live on
/// different shards, so this is taken from the merged reports).
fn group_lag(fams: &[Family]) -> Option<Family> {
    let find = |name: &str| fams.iter().find(|f| f.name == name);
    let committed = find("spindle_consumer_group_committed_offset")?;
    let hw = find("spindle_partition_high_watermark")?;
    let label = |s: &Sample, k: &str| {
        s.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let hws: BTreeMap<(String, String), f64> = hw
        .samples
        .iter()
        .map(|s| ((label(s, "topic"), label(s, "partition")), s.value))
        .collect();
    let mut lag = Family::new(
        "spindle_consumer_group_lag",
        Kind::Gauge,
        "Records a group has yet to consume on a partition: high watermark minus committed offset.",
    );
    for s in &committed.samples {
        let (g, t, p) = (label(s, "group"), label(s, "topic"), label(s, "partition"));
        if let Some(h) = hws.get(&(t.clone(), p.clone())) {
            lag.push(
                &[("group", &g), ("topic", &t), ("partition", &p)],
                (h - s.value).max(0.0),
            );
        }
    }
    Some(lag)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The exposition text of `fams`.
pub fn render(fams: &[Family]) -> String {
    let mut out = String::new();
    for f in fams {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for s in &f.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(s.value));
        }
    }
    out
}

/// Asks every shard for its report (bounded wait) and renders the lot.
fn scrape(shards: &[ScrapeTx]) -> String {
    let deadline = Instant::now() + Duration::from_millis(METRICS_IO_TIMEOUT_MS);
    let mut waiting = Vec::with_capacity(shards.len());
    for tx in shards {
        let (reply, rx) = flume::bounded(1);
        if tx.send_deadline(reply, deadline).is_ok() {
            waiting.push(rx);
        }
    }
    let mut reports = Vec::with_capacity(shards.len());
    for rx in waiting {
        if let Ok(r) = rx.recv_deadline(deadline) {
            reports.push(r);
        }
    }
    let missing = shards.len() - reports.len();
    let mut fams = merge(reports);
    fams.extend(cache_ratio(&fams));
    fams.extend(group_lag(&fams));
    fams.push(
        Family::new(
            "spindle_scrape_shards_missing",
            Kind::Gauge,
            "Shards that did not answer this scrape in time.",
        )
        .sample(&[], missing as f64),
    );
    render(&fams)
}

/// Binds `addr` and serves `/metrics` on a helper thread; returns the
/// bound address.
pub fn start(addr: &str, shards: Vec<ScrapeTx>) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let listener = TcpListener::bind(addr).with_context(|| format!("metrics listen on {addr}"))?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("spindle-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = serve_http(s, &shards) {
                            debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "metrics accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
    Ok(local)
}

/// One HTTP/1.x exchange, then close. Requests are served one at a time:
/// this is for a scraper, and the I/O timeout bounds a slow one.
fn serve_http(mut s: TcpStream, shards: &[ScrapeTx]) -> std::io::Result<()> {
    let timeout = Some(Duration::from_millis(METRICS_IO_TIMEOUT_MS));
    s.set_read_timeout(timeout)?;
    s.set_write_timeout(timeout)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= METRICS_REQUEST_BYTES_MAX {
            return respond(&mut s, "431 Request Header Fields Too Large", "");
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => respond(&mut s, "200 OK", &scrape(shards)),
        ("GET", _) => respond(&mut s, "404 Not Found", "not found; try /metrics\n"),
        _ => respond(&mut s, "405 Method Not Allowed", ""),
    }
}

fn respond(s: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let m = ShardMetrics::default();
        m.request_done(0, Duration::from_micros(100));
        m.request_done(0, Duration::from_micros(101));
        m.request_done(0, Duration::from_secs(100));
        m.request_done(-5, Duration::from_micros(1));
        let a = &m.api[0];
        assert_eq!(a.count.get(), 3);
        assert_eq!(a.buckets[0].get(), 1);
        assert_eq!(a.buckets[1].get(), 1);
        assert_eq!(a.buckets[LATENCY_BUCKETS_US.len()].get(), 1);
        assert_eq!(m.api[API_SLOTS - 1].count.get(), 1, "bad keys share a slot");
    }

    #[test]
    fn reports_merge_by_name_and_labels() {
        let a = vec![Family::new("x_total", Kind::Counter, "x")
            .sample(&[("k", "1")], 2.0)
            .sample(&[("k", "2")], 1.0)];
        let b = vec![
            Family::new("x_total", Kind::Counter, "x").sample(&[("k", "1")], 3.0),
            Family::new("y", Kind::Gauge, "y").sample(&[], 7.5),
        ];
        let text = render(&merge(vec![a, b]));
        assert_eq!(
            text,
            "# HELP x_total x\n# TYPE x_total counter\nx_total{k=\"1\"} 5\nx_total{k=\"2\"} 1\n\
             # HELP y y\n# TYPE y gauge\ny 7.5\n"
        );
    }

    #[test]
    fn registered_collectors_run_at_each_scrape() {
        let m = ShardMetrics::default();
        let lag = Rc::new(Cell::new(7.0));
        let seen = lag.clone();
        m.register_collector(Box::new(move |out| {
            out.push(
                Family::new("spindle_consumer_group_lag", Kind::Gauge, "lag").sample(
                    &[("group", "g"), ("topic", "t"), ("partition", "0")],
                    seen.get(),
                ),
            );
        }));
        let mut first = Vec::new();
        m.run_collectors(&mut first);
        lag.set(3.0);
        let mut second = Vec::new();
        m.run_collectors(&mut second);
        assert_eq!(first[0].samples[0].value, 7.0);
        assert_eq!(second[0].samples[0].value, 3.0, "collected fresh each time");
    }

    #[test]
    fn label_values_are_escaped() {
        let f = Family::new("z", Kind::Gauge, "a\\b\nc").sample(&[("t", "q\"\\\n")], 1.0);
        assert_eq!(
            render(&[f]),
            "# HELP z a\\\\b\\nc\n# TYPE z gauge\nz{t=\"q\\\"\\\\\\n\"} 1\n"
        );
    }
}
