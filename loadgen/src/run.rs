//! One run: create topics, start consumers then producers, print a live
//! line every interval, decide when the run ends, and collect the outcome.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::{ensure_topic, metadata, TopicLayout};
use crate::config::{Mode, RunSpec};
use crate::conn::Conn;
use crate::consumer::{run_consumer, ConsumerPlan};
use crate::cpu::{CpuClock, ProcessClock};
use crate::producer::{run_producer, ProducerPlan, ProducerTarget};
use crate::stats::{percentiles, Percentiles, Shared};

/// How long consumers may take to catch up after the producers finished.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One live-line interval.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub publish_rate: f64,
    pub publish_mb_s: f64,
    pub consume_rate: f64,
    pub consume_mb_s: f64,
    pub backlog: i64,
    pub errors: u64,
    pub publish: Percentiles,
    pub e2e: Percentiles,
}

/// Everything a finished run hands to the report.
pub struct Outcome {
    pub spec: RunSpec,
    pub samples: Vec<Sample>,
    pub publish: hdrhistogram::Histogram<u64>,
    pub e2e: hdrhistogram::Histogram<u64>,
    pub sent: u64,
    pub acked: u64,
    pub consumed: u64,
    pub errors: u64,
    pub measured_acked: u64,
    pub measured_acked_bytes: u64,
    pub measured_consumed: u64,
    pub measured_consumed_bytes: u64,
    /// Seconds of the measured window (after warm-up).
    pub measured_s: f64,
    pub cpu_cores: f64,
    pub cpu_busiest_thread: f64,
    /// The broker's (cores on average, CPU seconds) over the measured
    /// window, when its process is known.
    pub broker_cpu: Option<(f64, f64)>,
    pub failures: Vec<String>,
}

fn setup_topics(spec: &RunSpec) -> Result<Vec<TopicLayout>> {
    let mut conn = Conn::connect(&spec.bootstrap).context("bootstrap")?;
    let names = spec.topic_names();
    if spec.mode == Mode::Consume {
        return metadata(&mut conn, &names);
    }
    names
        .iter()
        .map(|t| ensure_topic(&mut conn, t, spec.partitions, spec.replication))
        .collect()
}

pub fn execute(spec: &RunSpec) -> Result<Outcome> {
    spec.validate()?;
    let layouts = setup_topics(spec)?;
    let run_id: u32 = rand::random();
    let shared = Shared::new(spec.warmup, run_id);
    let producers = spec.producers();
    let consumers = spec.consumers();
    let ready = Arc::new(Barrier::new((producers + consumers) as usize + 1));
    let mut consumer_threads = Vec::new();
    let mut producer_threads = Vec::new();
    if spec.backlog_bytes > 0 {
        shared.consumers_paused.store(true, Ordering::Relaxed);
    }
    let group_base = format!("loadgen-{run_id:08x}");
    for layout in &layouts {
        let parts = layout.leaders.len() as i32;
        for s in 0..spec
            .subscriptions_per_topic
            .min(if consumers > 0 { u32::MAX } else { 0 })
        {
            for c in 0..spec.consumers_per_subscription {
                let assigned: Vec<i32> = crate::consumer::range_assign(
                    &(0..spec.consumers_per_subscription)
                        .map(|i| format!("{i:06}"))
                        .collect::<Vec<_>>(),
                    parts,
                )
                .remove(&format!("{c:06}"))
                .unwrap_or_default();
                let plan = ConsumerPlan {
                    index: consumer_threads.len() as u32,
                    topic: layout.name.clone(),
                    bootstrap: spec.bootstrap.clone(),
                    leaders: layout.leaders.clone(),
                    assigned,
                    group: spec
                        .consumer
                        .group
                        .then(|| format!("{group_base}-{}-sub{s}", layout.name)),
                    config: spec.consumer.clone(),
                    e2e: spec.mode == Mode::E2e,
                };
                let (sh, rd) = (shared.clone(), ready.clone());
                consumer_threads.push(
                    std::thread::Builder::new()
                        .name(format!("consumer-{}", plan.index))
                        .spawn(move || run_consumer(plan, sh, rd))?,
                );
            }
        }
        if producers > 0 {
            let per_producer_records = spec.num_records.map(|n| n / u64::from(producers));
            let remainder = spec.num_records.map_or(0, |n| n % u64::from(producers));
            for _ in 0..spec.producers_per_topic {
                let index = producer_threads.len() as u32;
                let addr = layout
                    .leaders
                    .first()
                    .cloned()
                    .unwrap_or_else(|| spec.bootstrap.clone());
                if layout.leaders.iter().any(|l| l != &addr) {
                    bail!("topic {}: partitions on several brokers; loadgen producers write to one leader", layout.name);
                }
                let plan = ProducerPlan {
                    index,
                    target: ProducerTarget {
                        topic: layout.name.clone(),
                        partitions: parts,
                        addr,
                    },
                    config: spec.producer.clone(),
                    record_size: spec.record_size,
                    num_records: per_producer_records
                        .map(|n| n + u64::from(u64::from(index) < remainder)),
                    rate: if spec.throughput > 0.0 {
                        spec.throughput / f64::from(producers)
                    } else {
                        -1.0
                    },
                    stamp: spec.record_size >= crate::payload::STAMP_LEN,
                };
                let (sh, rd) = (shared.clone(), ready.clone());
                producer_threads.push(
                    std::thread::Builder::new()
                        .name(format!("producer-{index}"))
                        .spawn(move || run_producer(plan, sh, rd))?,
                );
            }
        }
    }
    // Before the barrier: every stamp the workers take comes after it.
    shared.set_measure_from(spec.warmup);
    ready.wait();
    let started = Instant::now();
    let mut cpu_at_measure: Option<CpuClock> = if spec.warmup.is_zero() {
        Some(CpuClock::start())
    } else {
        None
    };
    let broker_clock = |pid: Option<u32>| pid.and_then(ProcessClock::start);
    let mut broker_at_measure: Option<ProcessClock> = if spec.warmup.is_zero() {
        broker_clock(spec.broker_pid)
    } else {
        None
    };
    let mut samples = Vec::new();
    let mut last = shared.counters.snapshot();
    let mut last_t = Instant::now();
    let tick = if spec.report_interval.is_zero() {
        Duration::from_secs(1)
    } else {
        spec.report_interval
    };
    let mut next_tick = Instant::now() + tick;
    let mut producers_done_at: Option<Instant> = None;
    let mut measure_end: Option<Instant> = None;
    let subs = u64::from(spec.subscriptions_per_topic.max(1));
    let run_end = spec.duration.map(|d| spec.warmup + d);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let elapsed = started.elapsed();
        if cpu_at_measure.is_none() && elapsed >= spec.warmup {
            cpu_at_measure = Some(CpuClock::start());
            broker_at_measure = broker_clock(spec.broker_pid);
        }
        let snap = shared.counters.snapshot();
        if run_end.is_some_and(|e| elapsed >= e) && !shared.stop_producing.load(Ordering::Relaxed) {
            shared.stop_producing.store(true, Ordering::Relaxed);
            if producers == 0 {
                measure_end.get_or_insert_with(Instant::now);
            }
        }
        let producers_finished = producer_threads.iter().all(|t| t.is_finished());
        if producers > 0 && producers_finished && producers_done_at.is_none() {
            producers_done_at = Some(Instant::now());
            measure_end.get_or_insert_with(Instant::now);
        }
        if spec.backlog_bytes > 0
            && shared.consumers_paused.load(Ordering::Relaxed)
            && snap.acked_bytes.saturating_sub(snap.consumed_bytes / subs) >= spec.backlog_bytes
        {
            shared.consumers_paused.store(false, Ordering::Relaxed);
        }
        let done = match spec.mode {
            Mode::Produce => producers_done_at.is_some(),
            Mode::Consume => {
                run_end.is_some_and(|e| elapsed >= e)
                    || spec.num_records.is_some_and(|n| snap.consumed_msgs >= n)
                    || consumer_threads.iter().all(|t| t.is_finished())
            }
            Mode::E2e => match producers_done_at {
                Some(t) => {
                    shared.consumers_paused.store(false, Ordering::Relaxed);
                    snap.consumed_msgs >= snap.acked_msgs * subs
                        || t.elapsed() >= DRAIN_TIMEOUT
                        || consumer_threads.iter().all(|t| t.is_finished())
                }
                None => false,
            },
        };
        if Instant::now() >= next_tick || done {
            if let Some(c) = cpu_at_measure.as_mut() {
                c.sample();
            }
            let dt = last_t.elapsed().as_secs_f64().max(1e-9);
            let (p, e) = shared.take_interval();
            let s = Sample {
                t_s: started.elapsed().as_secs_f64(),
                publish_rate: (snap.acked_msgs - last.acked_msgs) as f64 / dt,
                publish_mb_s: (snap.acked_bytes - last.acked_bytes) as f64 / dt / 1e6,
                consume_rate: (snap.consumed_msgs - last.consumed_msgs) as f64 / dt,
                consume_mb_s: (snap.consumed_bytes - last.consumed_bytes) as f64 / dt / 1e6,
                backlog: (snap.acked_msgs * subs) as i64 - snap.consumed_msgs as i64,
                errors: snap.errors,
                publish: percentiles(&p),
                e2e: percentiles(&e),
            };
            if !spec.report_interval.is_zero() {
                eprintln!("{}", crate::report::live_line(spec, &s, &snap, elapsed));
            }
            samples.push(s);
            last = snap;
            last_t = Instant::now();
            next_tick += tick;
        }
        if done {
            break;
        }
    }
    let end = measure_end.unwrap_or_else(Instant::now);
    // Before the workers exit: /proc forgets a thread once it is joined.
    let (cpu_cores, busiest) = cpu_at_measure.unwrap_or_else(CpuClock::start).usage_since();
    let broker_cpu = broker_at_measure.and_then(|c| c.since());
    shared.stop_producing.store(true, Ordering::Relaxed);
    shared.stop_all.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for t in producer_threads.into_iter().chain(consumer_threads) {
        match t.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(format!("{e:#}")),
            Err(_) => failures.push("a worker thread panicked".into()),
        }
    }
    let snap = shared.counters.snapshot();
    let (publish, e2e) = shared.totals();
    let measured_s = end
        .checked_duration_since(started + spec.warmup)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-6);
    let c = &shared.counters;
    Ok(Outcome {
        spec: spec.clone(),
        samples,
        publish,
        e2e,
        sent: snap.sent_msgs,
        acked: snap.acked_msgs,
        consumed: snap.consumed_msgs,
        errors: snap.errors,
        measured_acked: c.measured_acked_msgs.load(Ordering::Relaxed),
        measured_acked_bytes: c.measured_acked_bytes.load(Ordering::Relaxed),
        measured_consumed: c.measured_consumed_msgs.load(Ordering::Relaxed),
        measured_consumed_bytes: c.measured_consumed_bytes.load(Ordering::Relaxed),
        measured_s,
        cpu_cores,
        cpu_busiest_thread: busiest,
        broker_cpu,
        failures,
    })
}
