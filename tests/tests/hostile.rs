//! Hostile and careless clients against the real broker, each while a
//! well-behaved client produces and fetches on its own connection. Each
//! test asserts that the good client is served (generous bounds: this
//! machine is shared) and that the broker's resident memory stays under
//! a stated bound. Every load is bounded in count and time. Figures (p99,
//! RSS) are measured by `scripts/bench-hostile-clients`, not here.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use spindle_tests::hostile::{
    drip, fast_producers, idle_connections, non_reading_consumers, rss_monitor, slow_loris,
    well_behaved, Served,
};
use spindle_tests::wire::{
    api_versions_round_trip, batch, connect, create_topic, metric_value, produce_v3, raise_nofile,
    read_frame, rss_kib, scrape_metrics,
};
use spindle_tests::Broker;

const MIB: u64 = 1024;
/// No round trip of the good client may take longer than this.
const GOOD_LATENCY_MAX_MS: f64 = 5_000.0;

/// A good client and an RSS monitor around `hostile`; returns what the
/// good client saw and the broker's peak RSS in KiB.
fn with_good_client(b: &Broker, hostile: impl FnOnce() -> Result<()>) -> Result<(Served, u64)> {
    create_topic(b.addr(), "good", 1)?;
    let pid = b.pid().context("pid")?;
    let stop = Arc::new(AtomicBool::new(false));
    let rss = rss_monitor(pid, Duration::from_millis(50), stop.clone());
    let good = well_behaved(
        b.addr().to_string(),
        "good".into(),
        100_000,
        Duration::from_millis(10),
        stop.clone(),
    );
    let r = hostile();
    // Let the good client run a little after the load too.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let served = good
        .join()
        .map_err(|_| anyhow::anyhow!("good client panicked"))??;
    let peak = rss
        .join()
        .map_err(|_| anyhow::anyhow!("rss monitor panicked"))?;
    r?;
    eprintln!(
        "good client: {} round trips, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; broker RSS peak {} MiB",
        served.count(),
        served.quantile_ms(0.5),
        served.quantile_ms(0.99),
        served.max_ms(),
        peak / MIB
    );
    ensure!(
        served.count() >= 10,
        "good client served only {} times",
        served.count()
    );
    ensure!(
        served.max_ms() < GOOD_LATENCY_MAX_MS,
        "good client waited {:.0} ms",
        served.max_ms()
    );
    Ok((served, peak))
}

fn scrape(b: &Broker) -> Result<String> {
    scrape_metrics(&b.metrics_addr().context("metrics address")?)
}

#[test]
fn a_thousand_idle_connections() -> Result<()> {
    let n = 1000;
    let limit = raise_nofile(n as u64 + 512)?;
    ensure!(
        limit >= n as u64 + 256,
        "open-file limit {limit} too low for the test"
    );
    let b = Broker::start(
        "idle-1000",
        &[
            "--shards",
            "2",
            "--max-connections-per-ip",
            "2000",
            "--cache-mb",
            "16",
        ],
    )?;
    // The broker raised its own soft limit to the hard one, and said so.
    let pid = b.pid().context("pid")?;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files line")?;
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    ensure!(
        nums.len() == 2 && nums[0] == nums[1],
        "soft limit not raised: {line}"
    );
    ensure!(
        b.log().contains("open-file limit"),
        "the limit is not logged"
    );
    let before = rss_kib(pid)?;
    let (_, peak) = with_good_client(&b, || {
        let mut idle = idle_connections(b.addr(), n)?;
        // Every one was accepted and is served, not left in the backlog.
        for (i, s) in idle.iter_mut().enumerate().step_by(97) {
            ensure!(
                api_versions_round_trip(s, i as i32)? == Some(0),
                "idle connection {i}"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
        let last = idle.last_mut().context("none")?;
        ensure!(
            api_versions_round_trip(last, 1)? == Some(0),
            "the last idle connection"
        );
        Ok(())
    })?;
    // Bound: a start-up broker plus 64 KiB per idle connection.
    let bound = before + 64 * n as u64 + 64 * MIB;
    ensure!(
        peak < bound,
        "RSS peak {peak} KiB over {bound} KiB (start {before} KiB)"
    );
    Ok(())
}

#[test]
fn slow_loris_connections_are_closed_in_time() -> Result<()> {
    let n = 200;
    raise_nofile(n as u64 + 512)?;
    let b = Broker::start(
        "slowloris",
        &[
            "--shards",
            "2",
            "--request-read-timeout-ms",
            "2000",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )?;
    let pid = b.pid().context("pid")?;
    let before = rss_kib(pid)?;
    let (_, peak) = with_good_client(&b, || {
        // Each announces a 100 MB request (under the default limit), sends
        // 4 bytes of it and then one byte every 200 ms: per-read timers
        // would never fire; the whole-request deadline does.
        let streams = slow_loris(b.addr(), n, 100_000_000)?;
        let t = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let closed = drip(
            streams,
            Duration::from_millis(200),
            t + Duration::from_secs(15),
            stop,
        )
        .join()
        .map_err(|_| anyhow::anyhow!("drip panicked"))?;
        ensure!(
            closed == n,
            "{closed} of {n} slow-loris connections closed in 15 s"
        );
        Ok(())
    })?;
    let text = scrape(&b)?;
    let timed_out = metric_value(
        &text,
        "spindle_connections_closed_total{reason=\"request_timeout\"}",
    )?;
    ensure!(
        timed_out == n as f64,
        "{timed_out} request timeouts counted, not {n}"
    );
    ensure!(
        b.wait_for_log_line(|l| l.contains("reason=\"request_timeout\""))
            .contains("reason=\"request_timeout\""),
        "no log line"
    );
    // A 100 MB announcement costs what arrived, not what was announced.
    let bound = before + 64 * MIB;
    ensure!(
        peak < bound,
        "RSS peak {peak} KiB over {bound} KiB (start {before} KiB)"
    );
    Ok(())
}

#[test]
fn consumers_that_stop_reading_are_cut_off() -> Result<()> {
    let b = Broker::start(
        "nonreading",
        &[
            "--shards",
            "2",
            "--cache-mb",
            "4",
            "--send-stall-timeout-ms",
            "2000",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )?;
    create_topic(b.addr(), "big", 1)?;
    // 16 MiB to fetch: from offset 0 it is cold, sent with sendfile; from
    // offset 52 it is in the cache (the last 4 MiB), written from memory.
    let mut s = connect(b.addr())?;
    let value = vec![b'b'; 256 << 10];
    for i in 0..64 {
        s.write_all(&produce_v3(i, 1, "big", 0, &batch(&[&value], 0)))?;
        read_frame(&mut s)?.context("fill: closed")?;
    }
    let pid = b.pid().context("pid")?;
    let before = rss_kib(pid)?;
    let n = 8;
    let (_, peak) = with_good_client(&b, || {
        // Each pipelines 32 fetches of up to 4 MiB and never reads.
        let _cold = non_reading_consumers(b.addr(), "big", 0, n / 2, 32, 4 << 20)?;
        let _hot = non_reading_consumers(b.addr(), "big", 52, n / 2, 32, 4 << 20)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stalled = metric_value(
                &scrape(&b)?,
                "spindle_connections_closed_total{reason=\"send_stall\"}",
            )?;
            if stalled == n as f64 {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{stalled} of {n} stalled consumers cut off in 20 s\n{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    })?;
    // Responses reference cached batches and file ranges: no copies.
    let bound = before + 96 * MIB;
    ensure!(
        peak < bound,
        "RSS peak {peak} KiB over {bound} KiB (start {before} KiB)"
    );
    Ok(())
}

#[test]
fn producers_faster_than_the_disk_are_slowed_not_buffered() -> Result<()> {
    let b = Broker::start(
        "fastproducer",
        &[
            "--shards",
            "2",
            "--cache-mb",
            "32",
            "--segment-bytes",
            "67108864",
            "--retention-bytes",
            "134217728",
            "--retention-check-interval-ms",
            "500",
        ],
    )?;
    create_topic(b.addr(), "flood", 1)?;
    let pid = b.pid().context("pid")?;
    let before = rss_kib(pid)?;
    let (_, peak) = with_good_client(&b, || {
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, answered) = fast_producers(
            b.addr(),
            "flood",
            4,
            256 << 10,
            Duration::from_secs(6),
            40_000,
            stop,
        )?
        .join()
        .map_err(|_| anyhow::anyhow!("producers panicked"))?;
        eprintln!("fast producers: {sent} requests sent, {answered} answered");
        ensure!(
            answered > 0 && answered == sent,
            "{answered} of {sent} answered"
        );
        Ok(())
    })?;
    // Bound: the caches (2 x 32 MiB), 4 connections' in-flight requests
    // (32 x 256 KiB each), write buffers; far below what was sent.
    let bound = before + 256 * MIB;
    ensure!(
        peak < bound,
        "RSS peak {peak} KiB over {bound} KiB (start {before} KiB)"
    );
    Ok(())
}
