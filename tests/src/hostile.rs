//! Hostile and careless clients, and the well-behaved one that must be
//! served meanwhile. Shared by `tests/tests/hostile.rs` (bounded, with
//! generous assertions) and the `hostile-clients` measurement binary
//! (`scripts/bench-hostile-clients`), which reports the figures.
//!
//! Every load here is bounded in count and in time, and stops when its
//! `stop` flag is set.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::wire::{
    batch, connect, fetch_v4, parse_fetch_v4, parse_produce_v3, produce_v3, read_frame, rss_kib,
};

/// What the well-behaved client saw.
#[derive(Debug, Default, Clone)]
pub struct Served {
    /// Produce-then-fetch round trips, each in microseconds.
    pub round_trips_us: Vec<u64>,
}

impl Served {
    pub fn count(&self) -> usize {
        self.round_trips_us.len()
    }

    /// The `q` quantile (0..=1) in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.round_trips_us.is_empty() {
            return f64::NAN;
        }
        let mut v = self.round_trips_us.clone();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.quantile_ms(1.0)
    }
}

/// The well-behaved client: on one connection, produces a small record
/// (acks=-1) and fetches it back, over and over, at most `count` times
/// or until `stop`; a pause of `pace` between round trips.
pub fn well_behaved(
    addr: String,
    topic: String,
    count: usize,
    pace: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<Served>> {
    std::thread::spawn(move || {
        let mut s = connect(&addr)?;
        let mut served = Served::default();
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let corr = i as i32;
            let value = format!("good-{i}");
            let t = Instant::now();
            s.write_all(&produce_v3(
                corr,
                -1,
                &topic,
                0,
                &batch(&[value.as_bytes()], 0),
            ))?;
            let resp = read_frame(&mut s)?.context("good producer: closed")?;
            let (err, base) = parse_produce_v3(&resp, corr)?;
            ensure!(err == 0, "good producer: error {err}");
            s.write_all(&fetch_v4(corr, &topic, 0, base, 0, 0, 1 << 20))?;
            let resp = read_frame(&mut s)?.context("good consumer: closed")?;
            let (err, _, records) = parse_fetch_v4(&resp, corr)?;
            ensure!(err == 0, "good consumer: error {err}");
            ensure!(
                records.windows(value.len()).any(|w| w == value.as_bytes()),
                "good consumer: record {i} not fetched back"
            );
            served.round_trips_us.push(t.elapsed().as_micros() as u64);
            std::thread::sleep(pace);
        }
        Ok(served)
    })
}

/// Samples a process's RSS every `every` until `stop`; yields the peak
/// in KiB.
pub fn rss_monitor(pid: u32, every: Duration, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(kib) = rss_kib(pid) {
                peak = peak.max(kib);
            }
            std::thread::sleep(every);
        }
        peak
    })
}

/// `n` connections that connect and then do nothing. The caller keeps
/// them open by holding the vector.
pub fn idle_connections(addr: &str, n: usize) -> Result<Vec<TcpStream>> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        v.push(connect(addr).with_context(|| format!("idle connection {i}"))?);
    }
    Ok(v)
}

/// Slow-loris connections: each sends a size prefix announcing `announce`
/// bytes and the first bytes of a request header, then one more byte
/// every `drip` until `stop`, never completing the request. Returns the
/// streams (to observe the broker closing them).
pub fn slow_loris(addr: &str, n: usize, announce: i32) -> Result<Vec<TcpStream>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect(addr)?;
        s.write_all(&announce.to_be_bytes())?;
        s.write_all(&[0, 0, 0, 3])?; // Produce v3, then nothing more
        v.push(s);
    }
    Ok(v)
}

/// Drips one byte into each stream every `drip` until `stop` or `until`;
/// returns how many streams the broker had closed by then (a write
/// failed).
pub fn drip(
    mut streams: Vec<TcpStream>,
    drip: Duration,
    until: Instant,
    stop: Arc<AtomicBool>,
) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut closed = vec![false; streams.len()];
        while Instant::now() < until && !stop.load(Ordering::Relaxed) && closed.iter().any(|c| !*c)
        {
            for (s, c) in streams.iter_mut().zip(closed.iter_mut()) {
                if !*c && s.write_all(&[0]).is_err() {
                    *c = true;
                }
            }
            std::thread::sleep(drip);
        }
        closed.iter().filter(|c| **c).count()
    })
}

/// Consumers that pipeline `fetches` Fetch requests of up to `max_bytes`
/// from `offset` and never read their sockets.
pub fn non_reading_consumers(
    addr: &str,
    topic: &str,
    offset: i64,
    n: usize,
    fetches: usize,
    max_bytes: i32,
) -> Result<Vec<TcpStream>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect(addr)?;
        for i in 0..fetches {
            s.write_all(&fetch_v4(i as i32, topic, 0, offset, 0, 0, max_bytes))?;
        }
        v.push(s);
    }
    Ok(v)
}

/// Producers far faster than the disk: each of `n` connections writes
/// Produce requests of one `record_bytes` record (acks=1) as fast as the
/// broker reads them, for at most `duration` or `requests_max` requests;
/// a second thread per connection drains the responses. Returns the
/// total requests written and answered.
pub fn fast_producers(
    addr: &str,
    topic: &str,
    n: usize,
    record_bytes: usize,
    duration: Duration,
    requests_max: u64,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<(u64, u64)>> {
    let value = vec![b'p'; record_bytes];
    let request = produce_v3(1, 1, topic, 0, &batch(&[&value], 0));
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..n {
        let mut w = connect(addr)?;
        let mut r = w.try_clone()?;
        let (stop, sent, answered, request) = (
            stop.clone(),
            sent.clone(),
            answered.clone(),
            request.clone(),
        );
        let deadline = Instant::now() + duration;
        threads.push(std::thread::spawn(move || {
            while Instant::now() < deadline
                && !stop.load(Ordering::Relaxed)
                && sent.load(Ordering::Relaxed) < requests_max
            {
                if w.write_all(&request).is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        }));
        threads.push(std::thread::spawn(move || {
            while let Ok(Some(_)) = read_frame(&mut r) {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    Ok(std::thread::spawn(move || {
        for t in threads {
            let _ = t.join();
        }
        (
            sent.load(Ordering::Relaxed),
            answered.load(Ordering::Relaxed),
        )
    }))
}
