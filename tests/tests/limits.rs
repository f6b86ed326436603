//! Each configured limit at its edge, against the real broker: exactly the
//! limit is accepted, one more is refused (a closed connection, as Kafka
//! does), and room made under the limit is usable again.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use spindle_tests::wire::{
    api_versions_round_trip, batch, connect, create_topic, expect_closed, fetch_v4, latest_offset,
    metric_value, parse_fetch_v4, parse_produce_v3, produce_one, produce_v3, put_str, read_frame,
    scrape_metrics,
};
use spindle_tests::Broker;

/// Whether a fresh connection gets an ApiVersions answer (false: the
/// broker closed it).
fn served(addr: &str) -> Result<(bool, TcpStream)> {
    let mut s = connect(addr)?;
    let ok = match api_versions_round_trip(&mut s, 7) {
        Ok(Some(0)) => true,
        Ok(Some(e)) => anyhow::bail!("ApiVersions error {e}"),
        Ok(None) => false,
        Err(e) => {
            let closed = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(spindle_tests::wire::is_closed);
            ensure!(closed, "unexpected error: {e:#}");
            false
        }
    };
    Ok((ok, s))
}

/// Polls until a new connection is served again (the broker learns of a
/// close asynchronously), within a generous bound.
fn served_again(addr: &str) -> Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, s) = served(addr)?;
        if ok {
            return Ok(s);
        }
        ensure!(
            Instant::now() < deadline,
            "no connection accepted after a close"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connection_limit_edge(flags: &[&str], n: usize, limit_name: &str) -> Result<()> {
    let b = Broker::start("conn-limit", flags)?;
    let mut held = Vec::new();
    for i in 0..n {
        let (ok, s) = served(b.addr())?;
        ensure!(ok, "connection {} of {n} refused", i + 1);
        held.push(s);
    }
    let (ok, _) = served(b.addr())?;
    ensure!(!ok, "connection {} over the limit {n} was served", n + 1);
    // One closes: a new one is accepted, and the limit holds again.
    drop(held.remove(0));
    held.push(served_again(b.addr())?);
    let (ok, _) = served(b.addr())?;
    ensure!(!ok, "the limit no longer holds after a close");
    let pred = |l: &str| {
        l.contains("connection limit reached")
            && l.contains(limit_name)
            && l.contains("peer=127.0.0.1:")
    };
    let log = b.wait_for_log_line(pred);
    ensure!(
        log.lines().any(pred),
        "no log line names the limit and the peer:\n{log}"
    );
    Ok(())
}

#[test]
fn connections_per_ip_limit_at_its_edge() -> Result<()> {
    connection_limit_edge(
        &["--shards", "2", "--max-connections-per-ip", "5"],
        5,
        "limit=\"max-connections-per-ip\"",
    )
}

#[test]
fn total_connection_limit_at_its_edge() -> Result<()> {
    connection_limit_edge(
        &["--shards", "2", "--max-connections", "4"],
        4,
        "limit=\"max-connections\"",
    )
}

/// A Produce v3 frame whose size (after the prefix) is exactly `size`
/// (acks=-1, correlation id 1): the record's value pads it.
fn produce_of_frame_size(topic: &str, size: usize) -> Result<Vec<u8>> {
    let build = |n: usize| produce_v3(1, -1, topic, 0, &batch(&[&vec![b'x'; n]], 0));
    let mut n = size.saturating_sub(build(0).len() - 4);
    // Varint lengths grow with the value: converge in a few steps.
    for _ in 0..8 {
        let got = build(n).len() - 4;
        if got == size {
            return Ok(build(n));
        }
        n = (n + size).checked_sub(got).context("size too small")?;
    }
    anyhow::bail!("no produce frame of exactly {size} bytes")
}

#[test]
fn request_size_limit_at_its_edge() -> Result<()> {
    let max = 4096;
    let b = Broker::start(
        "frame-limit",
        &["--shards", "1", "--max-request-bytes", "4096"],
    )?;
    create_topic(b.addr(), "fl", 1)?;
    let mut s = connect(b.addr())?;
    s.write_all(&produce_of_frame_size("fl", max)?)?;
    let resp = read_frame(&mut s)?.context("a frame of exactly the limit closed the connection")?;
    let (err, base) = parse_produce_v3(&resp, 1)?;
    ensure!(err == 0 && base == 0, "error {err} base {base}");
    let mut s = connect(b.addr())?;
    s.write_all(&produce_of_frame_size("fl", max + 1)?)?;
    expect_closed(&mut s).context("a frame one byte over the limit")?;
    ensure!(
        latest_offset(b.addr(), "fl", 0)? == (0, 1),
        "the oversized produce left a trace"
    );
    let pred = |l: &str| {
        l.contains("closing connection") && l.contains("bad_frame") && l.contains("peer=127.0.0.1:")
    };
    let log = b.wait_for_log_line(pred);
    ensure!(
        log.lines().any(pred),
        "no log line for the bad frame:\n{log}"
    );
    Ok(())
}

/// Fetch long polls at the end of "lp" that only an append answers.
fn long_polls(s: &mut TcpStream, corrs: std::ops::Range<i32>) -> Result<()> {
    for corr in corrs {
        s.write_all(&fetch_v4(corr, "lp", 0, 0, 60_000, 1, 1 << 20))?;
    }
    Ok(())
}

fn wait_for_offset(addr: &str, topic: &str, want: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (err, end) = latest_offset(addr, topic, 0)?;
        ensure!(err == 0, "list offsets error {err}");
        if end == want {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{topic} stayed at {end}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn inflight_limit_pauses_reading_at_its_edge() -> Result<()> {
    let b = Broker::start(
        "inflight",
        &["--shards", "1", "--max-inflight-requests", "4"],
    )?;
    create_topic(b.addr(), "lp", 1)?;
    create_topic(b.addr(), "mark", 1)?;
    let mark = |corr| produce_v3(corr, 1, "mark", 0, &batch(&[b"mark"], 0));
    // Exactly the limit: 3 parked long polls and a Produce. The Produce is
    // read and appended (its answer waits behind the polls).
    let mut at_limit = connect(b.addr())?;
    long_polls(&mut at_limit, 0..3)?;
    at_limit.write_all(&mark(3))?;
    wait_for_offset(b.addr(), "mark", 1)?;
    // One over: 4 parked polls hold every slot; the Produce behind them is
    // not read, so nothing is appended while they wait.
    let mut over = connect(b.addr())?;
    long_polls(&mut over, 0..4)?;
    over.write_all(&mark(4))?;
    std::thread::sleep(Duration::from_millis(1500));
    ensure!(
        latest_offset(b.addr(), "mark", 0)? == (0, 1),
        "the request over the in-flight limit was handled"
    );
    // An append to "lp" answers the polls; the freed slots let the
    // Produce in, and the answers come in request order.
    produce_one(b.addr(), "lp", 0, &batch(&[b"wake"], 0))?;
    for (s, polls, mark_corr, mark_base) in [(&mut at_limit, 3, 3, 0), (&mut over, 4, 4, 1)] {
        for corr in 0..polls {
            let resp = read_frame(s)?.context("poll answer")?;
            let (err, _, records) = parse_fetch_v4(&resp, corr)?;
            ensure!(
                err == 0 && records.windows(4).any(|w| w == b"wake"),
                "poll {corr}"
            );
        }
        let resp = read_frame(s)?.context("produce answer")?;
        ensure!(
            parse_produce_v3(&resp, mark_corr)? == (0, mark_base),
            "mark produce"
        );
    }
    wait_for_offset(b.addr(), "mark", 2)
}

#[test]
fn idle_connections_close_but_long_polls_are_not_idle() -> Result<()> {
    let b = Broker::start(
        "idle",
        &["--shards", "1", "--connections-max-idle-ms", "600"],
    )?;
    create_topic(b.addr(), "lp", 1)?;
    // Idle: closed after the idle time, not before.
    let t = Instant::now();
    let mut idle = connect(b.addr())?;
    ensure!(api_versions_round_trip(&mut idle, 1)? == Some(0));
    expect_closed(&mut idle)?;
    let waited = t.elapsed();
    ensure!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(10),
        "idle connection closed after {waited:?}"
    );
    // A long poll of 2 s in flight: nothing to read, but not idle.
    let mut polling = connect(b.addr())?;
    polling.write_all(&fetch_v4(9, "lp", 0, 0, 2_000, 1, 1 << 20))?;
    let resp =
        read_frame(&mut polling)?.context("the long poll's connection was closed as idle")?;
    let (err, _, records) = parse_fetch_v4(&resp, 9)?;
    ensure!(err == 0 && records.is_empty(), "poll: error {err}");
    // And a half-sent request is not idle either: it gets the request
    // read timeout (30 s default), so after the idle time it still stands.
    let mut half = connect(b.addr())?;
    half.write_all(&100i32.to_be_bytes())?;
    half.write_all(&[0, 18])?;
    std::thread::sleep(Duration::from_millis(1500));
    half.write_all(&api_versions_rest(100))?;
    let resp = read_frame(&mut half)?.context("a half-sent request was closed as idle")?;
    ensure!(resp.len() > 6, "ApiVersions answer");
    Ok(())
}

/// The rest of an ApiVersions v0 request of `size` bytes after its first
/// two (the API key), padded with a client id.
fn api_versions_rest(size: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0i16.to_be_bytes());
    v.extend_from_slice(&1i32.to_be_bytes());
    let id = "c".repeat(size - 2 - v.len() - 2);
    put_str(&mut v, &id);
    v
}

#[test]
fn cache_and_write_behind_limits_come_from_the_flags() -> Result<()> {
    let b = Broker::start(
        "mem-limits",
        &[
            "--shards",
            "2",
            "--cache-mb",
            "1",
            "--write-behind-mb",
            "3",
            "--flush",
            "never",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )?;
    let metrics = b.metrics_addr().context("no metrics line")?;
    create_topic(b.addr(), "mem", 2)?;
    // 4 MiB into each partition, 64 KiB at a time: four times the cache.
    let mut s = connect(b.addr())?;
    let value = vec![b'm'; 64 << 10];
    for i in 0..128 {
        s.write_all(&produce_v3(i, 1, "mem", i % 2, &batch(&[&value], 0)))?;
        let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, i)?;
        ensure!(err == 0, "produce error {err}");
    }
    let (status, text) = spindle_tests::wire::http_get(&metrics, "/metrics")?;
    ensure!(status == 200, "status {status}");
    let value_of = |name: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .with_context(|| format!("{name} missing:\n{text}"))?
            .parse::<f64>()
            .context("value")
    };
    let cache = value_of("spindle_batch_cache_bytes")?;
    ensure!(
        cache > 0.0 && cache <= 2.0 * 1048576.0,
        "cache holds {cache} bytes over 2 x 1 MiB"
    );
    ensure!(value_of("spindle_write_behind_budget_bytes")? == 2.0 * 3.0 * 1048576.0);
    ensure!(
        value_of("spindle_write_behind_bytes")? <= 2.0 * 3.0 * 1048576.0 + 2.0 * 2.0 * 1048576.0
    );
    Ok(())
}

/// A Fetch v4 long poll of "lp" whose frame (after the prefix) is
/// exactly `size` bytes: the client id pads it.
fn long_poll_of_frame_size(corr: i32, max_wait_ms: i32, size: usize) -> Result<Vec<u8>> {
    let unpadded = fetch_v4(corr, "lp", 0, 0, max_wait_ms, 1, 1 << 20);
    // Header: key, version, correlation id, then the client id string.
    let body = &unpadded[4 + 8 + 2 + "limits-test".len()..];
    let id_len = size
        .checked_sub(8 + 2 + body.len())
        .context("size too small")?;
    let mut v = Vec::new();
    v.extend_from_slice(&1i16.to_be_bytes());
    v.extend_from_slice(&4i16.to_be_bytes());
    v.extend_from_slice(&corr.to_be_bytes());
    put_str(&mut v, &"p".repeat(id_len));
    v.extend_from_slice(body);
    ensure!(v.len() == size, "built {} bytes, not {size}", v.len());
    Ok(spindle_tests::wire::frame(&v))
}

fn scrape_value(metrics: &str, sample: &str) -> Result<f64> {
    metric_value(&scrape_metrics(metrics)?, sample)
}

#[test]
fn shard_request_bytes_limit_at_its_edge() -> Result<()> {
    let b = Broker::start(
        "shard-bytes",
        &[
            "--shards",
            "1",
            "--max-request-bytes",
            "65536",
            "--inflight-request-mb",
            "1",
            "--max-inflight-requests",
            "64",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )?;
    let m = b.metrics_addr().context("metrics address")?;
    create_topic(b.addr(), "lp", 1)?;
    create_topic(b.addr(), "mark", 1)?;
    let mark_end = "spindle_partition_log_end_offset{topic=\"mark\",partition=\"0\"}";
    let held = "spindle_inflight_request_bytes";
    // Exactly the shard's budget on one connection: 31 parked polls and a
    // Produce, 32 KiB each. All are read; the Produce is appended.
    let frame = 32 << 10;
    let mut a = connect(b.addr())?;
    for corr in 0..31 {
        a.write_all(&long_poll_of_frame_size(corr, 6_000, frame)?)?;
    }
    a.write_all(&produce_of_frame_size("mark", frame)?)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while scrape_value(&m, mark_end)? != 1.0 {
        ensure!(
            Instant::now() < deadline,
            "the produce at the budget's edge was not read"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ensure!(
        scrape_value(&m, held)? == f64::from(1u32 << 20),
        "bytes held"
    );
    // Any byte more waits: another connection's small Produce is not read.
    let mut c = connect(b.addr())?;
    c.write_all(&produce_v3(7, 1, "mark", 0, &batch(&[b"over"], 0)))?;
    std::thread::sleep(Duration::from_millis(1500));
    ensure!(
        scrape_value(&m, mark_end)? == 1.0,
        "a request over the shard budget was read"
    );
    // The polls time out and free the budget; the waiting Produce goes in.
    let resp = read_frame(&mut c)?.context("the waiting produce was never answered")?;
    ensure!(parse_produce_v3(&resp, 7)? == (0, 1), "the waiting produce");
    for corr in 0..31 {
        let (err, _, _) = parse_fetch_v4(&read_frame(&mut a)?.context("poll")?, corr)?;
        ensure!(err == 0, "poll {corr}: error {err}");
    }
    ensure!(parse_produce_v3(&read_frame(&mut a)?.context("produce")?, 1)? == (0, 0));
    Ok(())
}
