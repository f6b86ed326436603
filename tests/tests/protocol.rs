//! Bad input against the real broker: truncated frames, absurd length
//! prefixes, unknown API keys, unsupported versions, bad CRCs, random
//! bytes. Each gets the Kafka error code Kafka would send or a closed
//! connection; the broker keeps serving its other clients, and the log
//! holds nothing of the bad request.
//!
//! Requests are built by hand (std only, `spindle_tests::wire`), so these
//! tests share no code with the codec they check.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{ensure, Context, Result};
use spindle_tests::wire::{
    self, api_versions_v0, batch, expect_closed, frame, list_offsets, parse_produce_v3, produce_v3,
    put_str, read_frame, request,
};
use spindle_tests::Broker;

// ---- wire helpers -------------------------------------------------------

fn connect(b: &Broker) -> Result<TcpStream> {
    spindle_tests::wire::connect(b.addr())
}

/// A cursor over a response.
struct Cur<'a>(&'a [u8]);

impl Cur<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        ensure!(self.0.len() >= n, "response truncated");
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i8(&mut self) -> Result<i8> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(String::new());
        }
        Ok(String::from_utf8(self.take(n as usize)?.to_vec())?)
    }
    fn bytes(&mut self) -> Result<Option<Vec<u8>>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?.to_vec()))
    }
}

// ---- record batches (magic 2) -------------------------------------------

// ---- requests -----------------------------------------------------------

/// Checks an ApiVersions v0 response; returns its error code and keys.
/// (api key, min version, max version)
type ApiRange = (i16, i16, i16);

fn parse_api_versions_v0(resp: &[u8], corr: i32) -> Result<(i16, Vec<ApiRange>)> {
    let mut c = Cur(resp);
    ensure!(c.i32()? == corr, "correlation id");
    let err = c.i16()?;
    let n = c.i32()?;
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push((c.i16()?, c.i16()?, c.i16()?));
    }
    ensure!(c.0.is_empty(), "trailing bytes in ApiVersions v0");
    Ok((err, keys))
}

/// The broker still answers a fresh client.
fn assert_serving(b: &Broker) -> Result<()> {
    let mut s = connect(b)?;
    s.write_all(&api_versions_v0(4242))?;
    let resp = read_frame(&mut s)?.context("broker closed a good client")?;
    let (err, keys) = parse_api_versions_v0(&resp, 4242)?;
    ensure!(err == 0 && !keys.is_empty(), "ApiVersions error {err}");
    Ok(())
}

/// Metadata v4 for `topic` (auto-created).
fn create_topic(b: &Broker, topic: &str) -> Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic);
    body.push(1); // allow auto creation
    let mut s = connect(b)?;
    s.write_all(&request(3, 4, 7, &body))?;
    let resp = read_frame(&mut s)?.context("metadata: closed")?;
    let mut c = Cur(&resp);
    ensure!(c.i32()? == 7);
    c.i32()?; // throttle
    for _ in 0..c.i32()? {
        c.i32()?;
        c.string()?;
        c.i32()?;
        c.string()?;
    }
    c.string()?; // cluster id
    c.i32()?; // controller
    ensure!(c.i32()? == 1, "one topic");
    let err = c.i16()?;
    ensure!(err == 0, "metadata topic error {err}");
    ensure!(c.string()? == topic);
    Ok(())
}

/// Fetch v4 of one partition from `offset`: (error, high watermark,
/// records bytes).
fn fetch_v4(b: &Broker, topic: &str, offset: i64) -> Result<(i16, i64, Vec<u8>)> {
    fetch_v4_partition(b, topic, 0, offset)
}

fn fetch_v4_partition(
    b: &Broker,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(i16, i64, Vec<u8>)> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica
    body.extend_from_slice(&0i32.to_be_bytes()); // max wait
    body.extend_from_slice(&0i32.to_be_bytes()); // min bytes
    body.extend_from_slice(&(1i32 << 20).to_be_bytes());
    body.push(0); // read uncommitted
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&(1i32 << 20).to_be_bytes());
    let mut s = connect(b)?;
    s.write_all(&request(1, 4, 9, &body))?;
    let resp = read_frame(&mut s)?.context("fetch: closed")?;
    let mut c = Cur(&resp);
    ensure!(c.i32()? == 9);
    c.i32()?; // throttle
    ensure!(c.i32()? == 1);
    ensure!(c.string()? == topic);
    ensure!(c.i32()? == 1);
    ensure!(c.i32()? == partition);
    let err = c.i16()?;
    let hw = c.i64()?;
    c.i64()?; // last stable offset
    let aborted = c.i32()?;
    ensure!(aborted <= 0, "aborted transactions");
    let records = c.bytes()?.unwrap_or_default();
    Ok((err, hw, records))
}

fn broker(name: &str) -> Result<Broker> {
    Broker::start(name, &["--shards", "2"])
}

// ---- tests --------------------------------------------------------------

#[test]
fn api_versions_advertise_produce_from_zero() -> Result<()> {
    let b = broker("apiv")?;
    let mut s = connect(&b)?;
    s.write_all(&api_versions_v0(1))?;
    let (err, keys) = parse_api_versions_v0(&read_frame(&mut s)?.context("closed")?, 1)?;
    ensure!(err == 0);
    let produce = keys.iter().find(|k| k.0 == 0).context("no Produce")?;
    ensure!(
        produce.1 == 0 && produce.2 >= 9,
        "Produce range {produce:?}"
    );
    let fetch = keys.iter().find(|k| k.0 == 1).context("no Fetch")?;
    ensure!(fetch.1 == 4 && fetch.2 >= 12, "Fetch range {fetch:?}");
    Ok(())
}

#[test]
fn api_versions_v3_sends_no_default_tagged_fields() -> Result<()> {
    let b = broker("apiv3")?;
    let mut s = connect(&b)?;
    // Header v2: key, version, correlation id, client id, no tags; body:
    // compact strings client software name and version, no tags.
    let mut p = Vec::new();
    p.extend_from_slice(&18i16.to_be_bytes());
    p.extend_from_slice(&3i16.to_be_bytes());
    p.extend_from_slice(&5i32.to_be_bytes());
    put_str(&mut p, "kcat");
    p.push(0);
    p.push(5);
    p.extend_from_slice(b"kcat");
    p.push(4);
    p.extend_from_slice(b"1.7");
    p.push(0);
    s.write_all(&frame(&p))?;
    let resp = read_frame(&mut s)?.context("closed")?;
    let mut c = Cur(&resp);
    ensure!(c.i32()? == 5, "response header v0: correlation id only");
    ensure!(c.i16()? == 0, "error code");
    let n = c.i8()? as usize; // compact array length + 1 (< 128 keys)
    ensure!(n > 1);
    for _ in 0..n - 1 {
        c.take(6)?; // key, min, max
        ensure!(c.i8()? == 0, "per-key tagged fields");
    }
    c.i32()?; // throttle
    ensure!(c.i8()? == 0, "top-level tagged fields must be empty");
    ensure!(c.0.is_empty(), "trailing bytes");
    Ok(())
}

#[test]
fn unsupported_api_versions_version_gets_v0_error() -> Result<()> {
    let b = broker("apivbad")?;
    let mut s = connect(&b)?;
    s.write_all(&request(18, 99, 3, &[1, 2, 3]))?;
    let (err, keys) = parse_api_versions_v0(&read_frame(&mut s)?.context("closed")?, 3)?;
    ensure!(err == 35, "UNSUPPORTED_VERSION expected, got {err}");
    ensure!(!keys.is_empty(), "the ranges come with the error");
    assert_serving(&b)
}

#[test]
fn unknown_api_key_and_unsupported_version_close_the_connection() -> Result<()> {
    let b = broker("unknown")?;
    for (key, version) in [(9999i16, 0i16), (-1, 0), (3, 99), (0, 1), (1, 3), (1, -1)] {
        let mut s = connect(&b)?;
        s.write_all(&request(key, version, 1, &[0; 16]))?;
        expect_closed(&mut s).with_context(|| format!("key {key} v{version}"))?;
    }
    assert_serving(&b)
}

#[test]
fn absurd_length_prefixes_close_without_allocating() -> Result<()> {
    let b = broker("absurd")?;
    for len in [i32::MAX, 0x7000_0000, (100 << 20) + 1, -1, i32::MIN] {
        let mut s = connect(&b)?;
        s.write_all(&len.to_be_bytes())?;
        s.write_all(&[0u8; 64])?;
        expect_closed(&mut s).with_context(|| format!("length {len}"))?;
    }
    let rss_kb = rss_kb(&b)?;
    ensure!(
        rss_kb < 1 << 20,
        "broker RSS {rss_kb} KiB after absurd lengths"
    );
    assert_serving(&b)
}

fn rss_kb(b: &Broker) -> Result<u64> {
    wire::rss_kib(b.pid().context("pid")?)
}

#[test]
fn absurd_array_counts_close_without_allocating() -> Result<()> {
    let b = broker("counts")?;
    // Metadata v4 claiming 2^31-1 topics in a 12-byte body.
    let mut body = i32::MAX.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 1, b'a', 1]);
    let mut s = connect(&b)?;
    s.write_all(&request(3, 4, 1, &body))?;
    expect_closed(&mut s)?;
    // Produce claiming 2^31-1 topics.
    let mut body = (-1i16).to_be_bytes().to_vec();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1000i32.to_be_bytes());
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut s = connect(&b)?;
    s.write_all(&request(0, 3, 2, &body))?;
    expect_closed(&mut s)?;
    ensure!(rss_kb(&b)? < 1 << 20);
    assert_serving(&b)
}

#[test]
fn truncated_frames_leave_the_broker_serving() -> Result<()> {
    let b = broker("trunc")?;
    // A frame announcing 100 bytes, 10 sent, then the client goes away.
    {
        let mut s = connect(&b)?;
        s.write_all(&100i32.to_be_bytes())?;
        s.write_all(&[0u8; 10])?;
        s.shutdown(std::net::Shutdown::Write)?;
        expect_closed(&mut s)?;
    }
    // Whole frames whose bodies stop inside the header or the request.
    for payload in [
        &[0u8, 3][..],
        &[0, 3, 0, 4, 0, 0][..],
        &[0, 3, 0, 4, 0, 0, 0, 1, 0, 9, b'a'],
    ] {
        let mut s = connect(&b)?;
        s.write_all(&frame(payload))?;
        expect_closed(&mut s).with_context(|| format!("{payload:?}"))?;
    }
    // A Produce cut inside its records.
    let good = produce_v3(1, 1, "t", 0, &batch(&[b"x"], 0));
    let mut cut = good[4..good.len() - 20].to_vec();
    cut = frame(&cut);
    let mut s = connect(&b)?;
    s.write_all(&cut)?;
    expect_closed(&mut s)?;
    assert_serving(&b)
}

#[test]
fn bad_crc_is_corrupt_message_and_leaves_no_trace() -> Result<()> {
    let b = broker("crc")?;
    create_topic(&b, "crc")?;
    let mut s = connect(&b)?;
    let mut bad = batch(&[b"evil", b"evil2"], 1_700_000_000_000);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    s.write_all(&produce_v3(11, -1, "crc", 0, &bad))?;
    let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, 11)?;
    ensure!(err == 2, "CORRUPT_MESSAGE expected, got {err}");
    // A batch whose length field lies is refused the same way.
    let mut lying = batch(&[b"evil"], 1_700_000_000_000);
    lying[8..12].copy_from_slice(&10_000i32.to_be_bytes());
    s.write_all(&produce_v3(12, -1, "crc", 0, &lying))?;
    let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, 12)?;
    ensure!(
        err == 2,
        "CORRUPT_MESSAGE expected for a bad length, got {err}"
    );
    // The same connection still works, and the good batch lands at 0.
    let good = batch(&[b"good"], 1_700_000_000_000);
    s.write_all(&produce_v3(13, -1, "crc", 0, &good))?;
    let (err, base) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, 13)?;
    ensure!(err == 0 && base == 0, "good batch: error {err} base {base}");
    let (err, hw, records) = fetch_v4(&b, "crc", 0)?;
    ensure!(err == 0 && hw == 1, "fetch: error {err} hw {hw}");
    let mut expect = good.clone();
    expect[..8].copy_from_slice(&0i64.to_be_bytes());
    ensure!(records == expect, "the log holds exactly the good batch");
    ensure!(!records.windows(4).any(|w| w == b"evil"));
    Ok(())
}

#[test]
fn acks_zero_gets_no_response() -> Result<()> {
    let b = broker("acks0")?;
    create_topic(&b, "a0")?;
    let mut s = connect(&b)?;
    s.write_all(&produce_v3(21, 0, "a0", 0, &batch(&[b"quiet"], 0)))?;
    // Next answer on this connection is the ApiVersions one.
    s.write_all(&api_versions_v0(22))?;
    let (err, _) = parse_api_versions_v0(&read_frame(&mut s)?.context("closed")?, 22)?;
    ensure!(err == 0);
    // The write happened all the same.
    let (err, hw, _) = fetch_v4(&b, "a0", 0)?;
    ensure!(err == 0 && hw == 1, "error {err} hw {hw}");
    Ok(())
}

#[test]
fn unknown_topic_and_partition_are_error_codes() -> Result<()> {
    let b = broker("unknowntp")?;
    create_topic(&b, "known")?;
    let mut s = connect(&b)?;
    s.write_all(&produce_v3(31, 1, "known", 7, &batch(&[b"x"], 0)))?;
    let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, 31)?;
    ensure!(err == 3, "UNKNOWN_TOPIC_OR_PARTITION expected, got {err}");
    s.write_all(&produce_v3(32, 1, "nope", 0, &batch(&[b"x"], 0)))?;
    let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, 32)?;
    ensure!(err == 3, "unknown topic: got {err}");
    let (err, _, _) = fetch_v4(&b, "known", 5)?;
    ensure!(err == 1, "OFFSET_OUT_OF_RANGE expected, got {err}");
    Ok(())
}

/// xorshift64*: deterministic, printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_bytes_never_take_the_broker_down() -> Result<()> {
    let b = broker("random")?;
    create_topic(&b, "r")?;
    let seed = std::env::var("SPINDLE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    eprintln!("random_bytes seed {seed}");
    let mut rng = Rng(seed | 1);
    let good = produce_v3(1, 1, "r", 0, &batch(&[b"ok"], 0));
    for i in 0..150 {
        let mut s = connect(&b)?;
        let bytes: Vec<u8> = match i % 3 {
            // Pure noise.
            0 => (0..(rng.next() % 300)).map(|_| rng.next() as u8).collect(),
            // A plausible frame of noise.
            1 => {
                let n = rng.next() % 200;
                let body: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let mut f = frame(&body);
                if body.len() >= 4 {
                    // A real API key and version, noise after.
                    let key = (rng.next() % 70) as i16;
                    let ver = (rng.next() % 14) as i16;
                    f[4..6].copy_from_slice(&key.to_be_bytes());
                    f[6..8].copy_from_slice(&ver.to_be_bytes());
                }
                f
            }
            // A good Produce with a few bytes flipped.
            _ => {
                let mut f = good.clone();
                for _ in 0..3 {
                    let at = 4 + (rng.next() as usize) % (f.len() - 4);
                    f[at] = rng.next() as u8;
                }
                f
            }
        };
        s.write_all(&bytes).ok();
        s.shutdown(std::net::Shutdown::Write).ok();
        // Whatever comes back (answers, nothing), the connection ends.
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        if i % 25 == 0 {
            assert_serving(&b).with_context(|| format!("after case {i}, seed {seed}"))?;
        }
    }
    assert_serving(&b)?;
    ensure!(std::fs::read_to_string(b.data_dir().join("spindle-meta.json"))?.contains("\"r\""));
    Ok(())
}

#[test]
fn other_clients_are_served_while_one_misbehaves() -> Result<()> {
    let b = broker("neighbours")?;
    create_topic(&b, "n")?;
    // A client that announces a large frame and stalls half way.
    let mut stalled = connect(&b)?;
    stalled.write_all(&(1_000_000i32).to_be_bytes())?;
    stalled.write_all(&[0u8; 1000])?;
    for i in 0..20 {
        let mut s = connect(&b)?;
        s.write_all(&produce_v3(i, -1, "n", 0, &batch(&[b"v"], 0)))?;
        let (err, base) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, i)?;
        ensure!(err == 0 && base == i64::from(i), "error {err} base {base}");
    }
    drop(stalled);
    assert_serving(&b)
}

#[test]
fn sigterm_exits_cleanly_and_topics_survive() -> Result<()> {
    let mut b = broker("restart")?;
    create_topic(&b, "keep")?;
    let mut s = connect(&b)?;
    s.write_all(&produce_v3(1, -1, "keep", 0, &batch(&[b"durable"], 0)))?;
    let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, 1)?;
    ensure!(err == 0);
    drop(s);
    let status = b.stop()?;
    ensure!(status.success(), "exit status {status}");
    b.restart()?;
    let (err, hw, records) = fetch_v4(&b, "keep", 0)?;
    ensure!(err == 0 && hw == 1, "after restart: error {err} hw {hw}");
    ensure!(records.windows(7).any(|w| w == b"durable"));
    Ok(())
}

#[test]
fn list_offsets_earliest_latest_and_by_timestamp() -> Result<()> {
    let b = broker("offsets")?;
    create_topic(&b, "lo")?;
    let mut s = connect(&b)?;
    for (i, ts) in [1_000i64, 2_000, 3_000].into_iter().enumerate() {
        let corr = i as i32;
        s.write_all(&produce_v3(corr, -1, "lo", 0, &batch(&[b"a", b"b"], ts)))?;
        let (err, base) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, corr)?;
        ensure!(err == 0 && base == 2 * i as i64, "error {err} base {base}");
    }
    ensure!(list_offsets(b.addr(), "lo", 0, -2)? == (0, 0), "earliest");
    ensure!(list_offsets(b.addr(), "lo", 0, -1)? == (0, 6), "latest");
    ensure!(
        list_offsets(b.addr(), "lo", 0, 1_500)? == (0, 2),
        "first batch at/after 1500"
    );
    ensure!(
        list_offsets(b.addr(), "lo", 0, 3_000)? == (0, 4),
        "exact timestamp"
    );
    ensure!(
        list_offsets(b.addr(), "lo", 0, 9_999)? == (0, -1),
        "past the end: -1"
    );
    ensure!(
        list_offsets(b.addr(), "nope", 0, -1)?.0 == 3,
        "unknown topic"
    );
    Ok(())
}

#[test]
fn fetch_long_poll_is_woken_by_an_append() -> Result<()> {
    let b = broker("longpoll")?;
    create_topic(&b, "lp")?;
    // A fetch at the end of an empty log with a wait far beyond the
    // client's read timeout: only an append can answer it in time.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&60_000i32.to_be_bytes()); // max wait
    body.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    body.extend_from_slice(&(1i32 << 20).to_be_bytes());
    body.push(0);
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, "lp");
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&(1i32 << 20).to_be_bytes());
    let mut waiting = connect(&b)?;
    waiting.write_all(&request(1, 4, 99, &body))?;
    // The fetch is parked; produce from another client.
    let mut p = connect(&b)?;
    p.write_all(&produce_v3(1, -1, "lp", 0, &batch(&[b"wake-up"], 0)))?;
    let (err, _) = parse_produce_v3(&read_frame(&mut p)?.context("closed")?, 1)?;
    ensure!(err == 0);
    let resp = read_frame(&mut waiting)?.context("fetch: closed")?;
    ensure!(
        resp.windows(7).any(|w| w == b"wake-up"),
        "the parked fetch returns the appended batch"
    );
    Ok(())
}

#[test]
fn partitions_on_every_shard_take_writes_in_order() -> Result<()> {
    let b = broker("shards")?;
    // Metadata v4 auto-creation uses the default partition count; ask for
    // 4 partitions with CreateTopics v2 instead.
    wire::create_topic(b.addr(), "sp", 4)?;
    let mut s = connect(&b)?;
    let meta = std::fs::read_to_string(b.data_dir().join("spindle-meta.json"))?;
    ensure!(meta.contains("\"owners\""), "placement persisted");
    // Pipelined produces on one connection to all four partitions.
    let mut expected = [0i64; 4];
    for i in 0..40 {
        let p = i % 4;
        s.write_all(&produce_v3(
            i,
            -1,
            "sp",
            p,
            &batch(&[format!("m{i}").as_bytes()], 0),
        ))?;
    }
    for i in 0..40 {
        let (err, base) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, i)?;
        let p = (i % 4) as usize;
        ensure!(
            err == 0 && base == expected[p],
            "partition {p}: error {err} base {base}"
        );
        expected[p] += 1;
    }
    Ok(())
}

#[test]
fn cold_reads_from_files_on_every_shard() -> Result<()> {
    // No batch cache and more data than the engine keeps in memory: fetches
    // read segment files and go out with sendfile, on both shards, from
    // logs created moments ago (the first DMA files those shards opened).
    let b = Broker::start("cold", &["--shards", "2", "--cache-mb", "0"])?;
    wire::create_topic(b.addr(), "cold", 4)?;
    let mut s = connect(&b)?;
    // Per partition: the batches as the log should hold them.
    let mut want: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
    for i in 0..64 {
        let p = i % 4;
        let value = format!("cold-{i:03}-").repeat(6_000);
        let mut records = batch(&[value.as_bytes()], 1_000 + i64::from(i));
        s.write_all(&produce_v3(i, -1, "cold", p, &records))?;
        let (err, base) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, i)?;
        ensure!(err == 0, "produce error {err}");
        records[..8].copy_from_slice(&base.to_be_bytes());
        want[p as usize].push(records);
    }
    for p in 0..4 {
        let batches = &want[p as usize];
        let (err, hw, got) = fetch_v4_partition(&b, "cold", p, 0)?;
        ensure!(err == 0 && hw == 16, "partition {p}: error {err} hw {hw}");
        ensure!(!got.is_empty(), "partition {p}: nothing read from offset 0");
        let mut at = 0;
        for batch in batches {
            if at == got.len() {
                break;
            }
            ensure!(
                got[at..].starts_with(batch),
                "partition {p}: batch at byte {at} differs"
            );
            at += batch.len();
        }
        ensure!(at == got.len(), "partition {p}: whole batches only");
        let (err, _, last) = fetch_v4_partition(&b, "cold", p, 15)?;
        ensure!(err == 0, "partition {p}: tail fetch error {err}");
        ensure!(
            Some(&last) == batches.last(),
            "partition {p}: the last batch as sent"
        );
    }
    Ok(())
}
