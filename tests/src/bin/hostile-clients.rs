//! Measures how the broker holds up under each hostile load of
//! `spindle_tests::hostile`: the well-behaved client's round-trip
//! percentiles and the broker's RSS, against a broker started for each
//! scenario. Run by `scripts/bench-hostile-clients` (release builds);
//! prints a Markdown table and one JSON line per scenario.
//!
//! `hostile-clients [SECONDS]`: how long each load runs (default 10).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use spindle_tests::hostile::{
    drip, fast_producers, idle_connections, non_reading_consumers, rss_monitor, slow_loris,
    well_behaved,
};
use spindle_tests::wire::{
    batch, connect, create_topic, produce_v3, raise_nofile, read_frame, rss_kib,
};
use spindle_tests::Broker;

struct Row {
    scenario: &'static str,
    load: String,
    outcome: String,
    count: usize,
    p50: f64,
    p99: f64,
    max: f64,
    rss_start_mib: f64,
    rss_peak_mib: f64,
}

/// Runs `hostile` for `secs` beside the good client on a fresh broker.
fn scenario(
    name: &'static str,
    load: String,
    flags: &[&str],
    setup: impl FnOnce(&Broker) -> Result<()>,
    hostile: impl FnOnce(&Broker, Duration) -> Result<String>,
    secs: u64,
) -> Result<Row> {
    let b = Broker::start(name, flags)?;
    create_topic(b.addr(), "good", 1)?;
    setup(&b)?;
    let pid = b.pid().context("pid")?;
    let start = rss_kib(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let rss = rss_monitor(pid, Duration::from_millis(20), stop.clone());
    // Warm the good client's connection and topic before timing.
    std::thread::sleep(Duration::from_millis(200));
    let good = well_behaved(
        b.addr().to_string(),
        "good".into(),
        1_000_000,
        Duration::from_millis(5),
        stop.clone(),
    );
    let outcome = hostile(&b, Duration::from_secs(secs))?;
    stop.store(true, Ordering::Relaxed);
    let served = good
        .join()
        .map_err(|_| anyhow::anyhow!("good client panicked"))??;
    let peak = rss
        .join()
        .map_err(|_| anyhow::anyhow!("rss monitor panicked"))?;
    Ok(Row {
        scenario: name,
        load,
        outcome,
        count: served.count(),
        p50: served.quantile_ms(0.5),
        p99: served.quantile_ms(0.99),
        max: served.max_ms(),
        rss_start_mib: start as f64 / 1024.0,
        rss_peak_mib: peak as f64 / 1024.0,
    })
}

fn main() -> Result<()> {
    let secs: u64 = std::env::args().nth(1).map_or(Ok(10), |s| s.parse())?;
    raise_nofile(8192)?;
    let base = ["--shards", "2", "--cache-mb", "64"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    let mut rows = Vec::new();
    rows.push(scenario(
        "baseline",
        "none".into(),
        &with(&[]),
        |_| Ok(()),
        |_, d| {
            std::thread::sleep(d);
            Ok("-".into())
        },
        secs,
    )?);
    let idle_n = 1000;
    rows.push(scenario(
        "idle",
        format!("{idle_n} idle connections"),
        &with(&["--max-connections-per-ip", "5000"]),
        |_| Ok(()),
        |b, d| {
            let conns = idle_connections(b.addr(), idle_n)?;
            std::thread::sleep(d);
            Ok(format!("{} held open", conns.len()))
        },
        secs,
    )?);
    let loris_n = 500;
    rows.push(scenario(
        "slow-loris",
        format!("{loris_n} connections announcing 100 MB, 1 byte per 200 ms"),
        &with(&[
            "--max-connections-per-ip",
            "5000",
            "--request-read-timeout-ms",
            "5000",
        ]),
        |_| Ok(()),
        |b, d| {
            let t = Instant::now();
            let streams = slow_loris(b.addr(), loris_n, 100_000_000)?;
            let stop = Arc::new(AtomicBool::new(false));
            let closed = drip(streams, Duration::from_millis(200), t + d, stop)
                .join()
                .map_err(|_| anyhow::anyhow!("drip panicked"))?;
            let took = t.elapsed();
            std::thread::sleep(d.saturating_sub(took));
            Ok(format!(
                "{closed} closed after {:.1} s (timeout 5 s)",
                took.as_secs_f64()
            ))
        },
        secs,
    )?);
    let nr_n = 16;
    rows.push(scenario(
        "non-reading consumers",
        format!("{nr_n} consumers x 32 pipelined 4 MiB cold fetches, never read"),
        &with(&["--send-stall-timeout-ms", "5000"]),
        |b| {
            create_topic(b.addr(), "big", 1)?;
            let mut s = connect(b.addr())?;
            let value = vec![b'b'; 1 << 20];
            for i in 0..256 {
                std::io::Write::write_all(
                    &mut s,
                    &produce_v3(i, 1, "big", 0, &batch(&[&value], 0)),
                )?;
                read_frame(&mut s)?.context("fill: closed")?;
            }
            Ok(())
        },
        |b, d| {
            let hostile = non_reading_consumers(b.addr(), "big", 0, nr_n, 32, 4 << 20)?;
            std::thread::sleep(d);
            Ok(format!(
                "{} connections held; stall timeout 5 s",
                hostile.len()
            ))
        },
        secs,
    )?);
    let fp_n = 4;
    rows.push(scenario(
        "fast producers",
        format!("{fp_n} connections flooding 256 KiB batches, acks=1"),
        &with(&[
            "--segment-bytes",
            "268435456",
            "--retention-bytes",
            "536870912",
            "--retention-check-interval-ms",
            "1000",
        ]),
        |b| create_topic(b.addr(), "flood", 1),
        |b, d| {
            let stop = Arc::new(AtomicBool::new(false));
            let (sent, answered) =
                fast_producers(b.addr(), "flood", fp_n, 256 << 10, d, u64::MAX, stop)?
                    .join()
                    .map_err(|_| anyhow::anyhow!("producers panicked"))?;
            let mb_s = sent as f64 * 0.25 / d.as_secs_f64();
            Ok(format!(
                "{sent} sent, {answered} answered ({mb_s:.0} MiB/s)"
            ))
        },
        secs,
    )?);
    println!("| scenario | hostile load | outcome | good round trips | p50 ms | p99 ms | max ms | broker RSS start MiB | broker RSS peak MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
            r.scenario,
            r.load,
            r.outcome,
            r.count,
            r.p50,
            r.p99,
            r.max,
            r.rss_start_mib,
            r.rss_peak_mib
        );
    }
    println!();
    for r in &rows {
        println!(
            "{{\"scenario\":\"{}\",\"round_trips\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"rss_start_mib\":{:.1},\"rss_peak_mib\":{:.1}}}",
            r.scenario, r.count, r.p50, r.p99, r.max, r.rss_start_mib, r.rss_peak_mib
        );
    }
    Ok(())
}
