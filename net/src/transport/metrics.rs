//! What the transport counts and reports: requests by API (count and
//! latency, from read to response written), bytes in and out, and
//! connection events, plus the live connections and in-flight request
//! bytes. Every counter is a `Cell` owned by one shard: one update per
//! event, no atomics, no sharing.

use std::cell::Cell;
use std::time::Duration;

use spindle_codec::kafka_protocol::messages::ApiKey;

use super::limits::Rejected;
use crate::api::registry;
use crate::metrics::{Family, Kind, Report};
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

/// One shard's connection counters; touched only on that shard.
pub struct ConnectionMetrics {
    api: Box<[ApiCounters]>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    accepted: Cell<u64>,
    rejected_total: Cell<u64>,
    rejected_per_ip: Cell<u64>,
    closed: [Cell<u64>; CLOSE_REASONS.len()],
}

impl Default for ConnectionMetrics {
    fn default() -> Self {
        ConnectionMetrics {
            api: (0..API_SLOTS).map(|_| ApiCounters::default()).collect(),
            bytes_in: Cell::new(0),
            bytes_out: Cell::new(0),
            accepted: Cell::new(0),
            rejected_total: Cell::new(0),
            rejected_per_ip: Cell::new(0),
            closed: Default::default(),
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

impl ConnectionMetrics {
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

    pub fn rejected(&self, why: Rejected) {
        match why {
            Rejected::Total => add(&self.rejected_total, 1),
            Rejected::PerIp => add(&self.rejected_per_ip, 1),
        }
    }

    pub fn closed(&self, why: CloseReason) {
        let i = CLOSE_REASONS.iter().position(|r| *r == why).unwrap_or(0);
        add(&self.closed[i], 1);
    }
}

fn api_label(slot: usize) -> String {
    match i16::try_from(slot).ok().map(ApiKey::try_from) {
        Some(Ok(k)) if slot < API_SLOTS - 1 => format!("{k:?}"),
        _ => "unknown".to_string(),
    }
}

/// The transport's families of the shard this runs on.
pub fn families(shard: &Shard, out: &mut Report) {
    let m = &shard.metrics;
    request_families(m, out);
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
    connection_families(shard, out);
}

fn request_families(m: &ConnectionMetrics, out: &mut Report) {
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
            .and_then(registry::served)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let m = ConnectionMetrics::default();
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
}
