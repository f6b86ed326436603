//! Counters and latency histograms shared by the worker threads and the
//! reporter. Latencies are recorded in microseconds into HDR histograms
//! (1 us .. 1 h, 3 significant digits); each worker owns its histograms
//! behind an uncontended mutex that the reporter visits once a second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub const LATENCY_US_MAX: u64 = 3_600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    // 1 us .. 1 h with 3 significant digits: bounds are constants, so this
    // cannot fail.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant histogram bounds are valid")
}

/// Whole-run counters. Workers add; the reporter reads.
#[derive(Default)]
pub struct Counters {
    pub sent_msgs: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub acked_msgs: AtomicU64,
    pub acked_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub consumed_msgs: AtomicU64,
    pub consumed_bytes: AtomicU64,
    /// Records acknowledged inside the measured window (after warm-up).
    pub measured_acked_msgs: AtomicU64,
    pub measured_acked_bytes: AtomicU64,
    pub measured_consumed_msgs: AtomicU64,
    pub measured_consumed_bytes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CounterSnapshot {
    pub sent_msgs: u64,
    pub sent_bytes: u64,
    pub acked_msgs: u64,
    pub acked_bytes: u64,
    pub errors: u64,
    pub consumed_msgs: u64,
    pub consumed_bytes: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            sent_msgs: l(&self.sent_msgs),
            sent_bytes: l(&self.sent_bytes),
            acked_msgs: l(&self.acked_msgs),
            acked_bytes: l(&self.acked_bytes),
            errors: l(&self.errors),
            consumed_msgs: l(&self.consumed_msgs),
            consumed_bytes: l(&self.consumed_bytes),
        }
    }
}

/// One worker's histograms.
pub struct Hists {
    pub publish_interval: Histogram<u64>,
    pub publish_total: Histogram<u64>,
    pub e2e_interval: Histogram<u64>,
    pub e2e_total: Histogram<u64>,
}

impl Hists {
    pub fn new() -> Hists {
        Hists {
            publish_interval: new_histogram(),
            publish_total: new_histogram(),
            e2e_interval: new_histogram(),
            e2e_total: new_histogram(),
        }
    }
}

/// Everything a run shares between threads.
pub struct Shared {
    /// Time zero of the run: stamps are nanoseconds since this instant.
    pub epoch: Instant,
    /// Stamps (ns since epoch) below this are warm-up and left out.
    pub measure_from_ns: AtomicU64,
    pub counters: Counters,
    pub hists: Mutex<Vec<Arc<Mutex<Hists>>>>,
    /// Set when producers must stop generating.
    pub stop_producing: AtomicBool,
    /// Set when everything must stop.
    pub stop_all: AtomicBool,
    /// Consumers wait while this is set (OMB backlog build-up).
    pub consumers_paused: AtomicBool,
    pub run_id: u32,
}

impl Shared {
    pub fn new(warmup: Duration, run_id: u32) -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            measure_from_ns: AtomicU64::new(warmup.as_nanos() as u64),
            counters: Counters::default(),
            hists: Mutex::new(Vec::new()),
            stop_producing: AtomicBool::new(false),
            stop_all: AtomicBool::new(false),
            consumers_paused: AtomicBool::new(false),
            run_id,
        })
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn register(&self) -> Arc<Mutex<Hists>> {
        let h = Arc::new(Mutex::new(Hists::new()));
        if let Ok(mut v) = self.hists.lock() {
            v.push(h.clone());
        }
        h
    }

    pub fn measuring(&self, stamp_ns: u64) -> bool {
        stamp_ns >= self.measure_from_ns.load(Ordering::Relaxed)
    }

    /// Starts the warm-up clock now: what is stamped before `warmup` from
    /// now is left out of the results.
    pub fn set_measure_from(&self, warmup: Duration) {
        let from = self.now_ns() + warmup.as_nanos() as u64;
        self.measure_from_ns.store(from, Ordering::Relaxed);
    }

    /// Merges and resets every worker's interval histograms.
    pub fn take_interval(&self) -> (Histogram<u64>, Histogram<u64>) {
        let mut p = new_histogram();
        let mut e = new_histogram();
        if let Ok(v) = self.hists.lock() {
            for h in v.iter() {
                if let Ok(mut h) = h.lock() {
                    let _ = p.add(&h.publish_interval);
                    let _ = e.add(&h.e2e_interval);
                    h.publish_interval.reset();
                    h.e2e_interval.reset();
                }
            }
        }
        (p, e)
    }

    /// Merges every worker's whole-run histograms.
    pub fn totals(&self) -> (Histogram<u64>, Histogram<u64>) {
        let mut p = new_histogram();
        let mut e = new_histogram();
        if let Ok(v) = self.hists.lock() {
            for h in v.iter() {
                if let Ok(h) = h.lock() {
                    let _ = p.add(&h.publish_total);
                    let _ = e.add(&h.e2e_total);
                }
            }
        }
        (p, e)
    }
}

/// Records a latency in both the interval and (when measured) total
/// histograms. Values beyond the range are clamped, never dropped.
pub fn record(
    interval: &mut Histogram<u64>,
    total: &mut Histogram<u64>,
    latency_us: u64,
    measured: bool,
) {
    let v = latency_us.clamp(1, LATENCY_US_MAX);
    let _ = interval.record(v);
    if measured {
        let _ = total.record(v);
    }
}

/// Latency percentiles in milliseconds, as reported everywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p75_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub p9999_ms: f64,
    pub max_ms: f64,
}

pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let q = |p: f64| us_to_ms(h.value_at_quantile(p));
    Percentiles {
        count: h.len(),
        avg_ms: h.mean() / 1000.0,
        p50_ms: q(0.50),
        p75_ms: q(0.75),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        p9999_ms: q(0.9999),
        max_ms: us_to_ms(h.max()),
    }
}

/// Exact nearest-rank percentile of a sorted slice, the reference the HDR
/// figures are checked against in tests.
#[cfg(test)]
pub fn exact_percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles from the HDR histogram agree with the exact nearest-rank
    /// percentiles of known inputs within the histogram's precision
    /// (3 significant digits = 0.1%).
    #[test]
    fn percentiles_match_exact_ranks() {
        let mut values: Vec<u64> = (1..=100_000u64).map(|i| (i * 7919) % 250_000 + 1).collect();
        let mut h = new_histogram();
        for &v in &values {
            h.record(v).unwrap();
        }
        values.sort_unstable();
        for q in [0.5, 0.75, 0.95, 0.99, 0.999, 0.9999, 1.0] {
            let exact = exact_percentile(&values, q) as f64;
            let hdr = h.value_at_quantile(q) as f64;
            assert!(
                (hdr - exact).abs() <= exact * 0.001 + 1.0,
                "q {q}: hdr {hdr} exact {exact}"
            );
        }
        let p = percentiles(&h);
        assert_eq!(p.count, 100_000);
        assert!((p.max_ms - us_to_ms(*values.last().unwrap())).abs() <= 0.25);
    }

    #[test]
    fn uniform_one_to_thousand() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let p = percentiles(&h);
        assert_eq!(p.p50_ms, 0.5);
        assert_eq!(p.p99_ms, 0.99);
        assert_eq!(p.p999_ms, 0.999);
        assert_eq!(p.max_ms, 1.0);
        assert!((p.avg_ms - 0.5005).abs() < 1e-9);
    }

    #[test]
    fn warmup_values_stay_out_of_totals() {
        let mut i = new_histogram();
        let mut t = new_histogram();
        record(&mut i, &mut t, 5, false);
        record(&mut i, &mut t, 0, true);
        record(&mut i, &mut t, u64::MAX, true);
        assert_eq!(i.len(), 3);
        assert_eq!(t.len(), 2);
        assert_eq!(t.min(), 1);
        assert!(t.max() >= LATENCY_US_MAX);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(percentiles(&new_histogram()), Percentiles::default());
        assert_eq!(exact_percentile(&[], 0.5), 0);
    }
}
