//! Kafka requests built by hand (std only) for the raw-protocol tests of
//! bad input, limits, hostile clients and metrics, so they share no code
//! with the codec they exercise.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub fn connect(addr: &str) -> Result<TcpStream> {
    let s = TcpStream::connect(addr).context("connect")?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Request header v1 (non-flexible) followed by `body`, framed.
pub fn request(api_key: i16, version: i16, corr: i32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&api_key.to_be_bytes());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&corr.to_be_bytes());
    put_str(&mut v, "limits-test");
    v.extend_from_slice(body);
    frame(&v)
}

pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

pub fn put_str(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(&(s.len() as i16).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
}

/// Reads one response frame (without its size prefix); `Ok(None)` if the
/// broker closed the connection instead.
pub fn read_frame(s: &mut TcpStream) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if is_closed(&e) => return Ok(None),
        Err(e) => return Err(e).context("read response size"),
    }
    let n = i32::from_be_bytes(len);
    ensure!((0..256 << 20).contains(&n), "response size {n}");
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).context("read response body")?;
    Ok(Some(buf))
}

pub fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
    )
}

/// Asserts the broker closes the connection (EOF or reset) without
/// answering.
pub fn expect_closed(s: &mut TcpStream) -> Result<()> {
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => bail!("expected the connection closed, got {n} bytes"),
        Err(e) if is_closed(&e) => Ok(()),
        Err(e) => Err(e).context("waiting for close"),
    }
}

/// A cursor over a response.
pub struct Cur<'a>(pub &'a [u8]);

impl Cur<'_> {
    pub fn take(&mut self, n: usize) -> Result<&[u8]> {
        ensure!(self.0.len() >= n, "response truncated");
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }
    pub fn string(&mut self) -> Result<String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(String::new());
        }
        Ok(String::from_utf8(self.take(n as usize)?.to_vec())?)
    }
    pub fn bytes(&mut self) -> Result<Option<Vec<u8>>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?.to_vec()))
    }
}

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn put_varint(v: &mut Vec<u8>, x: i64) {
    let mut z = ((x << 1) ^ (x >> 63)) as u64;
    while z >= 0x80 {
        v.push((z as u8) | 0x80);
        z >>= 7;
    }
    v.push(z as u8);
}

/// A v2 batch of records with the given values (no keys, no headers).
pub fn batch(values: &[&[u8]], timestamp_ms: i64) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, val) in values.iter().enumerate() {
        let mut r = vec![0u8]; // attributes
        put_varint(&mut r, 0); // timestamp delta
        put_varint(&mut r, i as i64); // offset delta
        put_varint(&mut r, -1); // null key
        put_varint(&mut r, val.len() as i64);
        r.extend_from_slice(val);
        put_varint(&mut r, 0); // headers
        put_varint(&mut records, r.len() as i64);
        records.extend_from_slice(&r);
    }
    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes
    after_crc.extend_from_slice(&(values.len() as i32 - 1).to_be_bytes());
    after_crc.extend_from_slice(&timestamp_ms.to_be_bytes());
    after_crc.extend_from_slice(&timestamp_ms.to_be_bytes());
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&(values.len() as i32).to_be_bytes());
    after_crc.extend_from_slice(&records);
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((4 + 1 + 4 + after_crc.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&crc32c(&after_crc).to_be_bytes());
    b.extend_from_slice(&after_crc);
    b
}

pub fn api_versions_v0(corr: i32) -> Vec<u8> {
    request(18, 0, corr, &[])
}

/// A v0 ApiVersions round trip on `s`: its error code.
pub fn api_versions_round_trip(s: &mut TcpStream, corr: i32) -> Result<Option<i16>> {
    s.write_all(&api_versions_v0(corr))?;
    let Some(resp) = read_frame(s)? else {
        return Ok(None);
    };
    let mut c = Cur(&resp);
    ensure!(c.i32()? == corr, "correlation id");
    Ok(Some(c.i16()?))
}

pub fn produce_v3(corr: i32, acks: i16, topic: &str, partition: i32, records: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&acks.to_be_bytes());
    body.extend_from_slice(&30_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    request(0, 3, corr, &body)
}

/// Produce v3 response: (error code, base offset) of the one partition.
pub fn parse_produce_v3(resp: &[u8], corr: i32) -> Result<(i16, i64)> {
    let mut c = Cur(resp);
    ensure!(c.i32()? == corr, "correlation id");
    ensure!(c.i32()? == 1);
    c.string()?;
    ensure!(c.i32()? == 1);
    c.i32()?;
    let err = c.i16()?;
    let base = c.i64()?;
    Ok((err, base))
}

/// Produces `records` with acks=-1 on a fresh connection: the base offset.
pub fn produce_one(addr: &str, topic: &str, partition: i32, records: &[u8]) -> Result<i64> {
    let mut s = connect(addr)?;
    s.write_all(&produce_v3(1, -1, topic, partition, records))?;
    let (err, base) = parse_produce_v3(&read_frame(&mut s)?.context("produce: closed")?, 1)?;
    ensure!(err == 0, "produce error {err}");
    Ok(base)
}

/// Fetch v4 of one partition from `offset`.
pub fn fetch_v4(
    corr: i32,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&max_wait_ms.to_be_bytes());
    body.extend_from_slice(&min_bytes.to_be_bytes());
    body.extend_from_slice(&max_bytes.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&max_bytes.to_be_bytes());
    request(1, 4, corr, &body)
}

/// A Fetch v4 response of one partition: (error, high watermark, records).
pub fn parse_fetch_v4(resp: &[u8], corr: i32) -> Result<(i16, i64, Vec<u8>)> {
    let mut c = Cur(resp);
    ensure!(c.i32()? == corr, "correlation id");
    c.i32()?;
    ensure!(c.i32()? == 1);
    c.string()?;
    ensure!(c.i32()? == 1);
    c.i32()?;
    let err = c.i16()?;
    let hw = c.i64()?;
    c.i64()?;
    let aborted = c.i32()?;
    ensure!(aborted <= 0, "aborted transactions");
    Ok((err, hw, c.bytes()?.unwrap_or_default()))
}

/// CreateTopics v2 of `topic` with `partitions` partitions.
pub fn create_topic(addr: &str, topic: &str, partitions: i32) -> Result<()> {
    let mut body = Vec::new();
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic);
    body.extend_from_slice(&partitions.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.push(0);
    let mut s = connect(addr)?;
    s.write_all(&request(19, 2, 5, &body))?;
    let resp = read_frame(&mut s)?.context("create topics: closed")?;
    let mut c = Cur(&resp);
    ensure!(c.i32()? == 5);
    c.i32()?;
    ensure!(c.i32()? == 1);
    ensure!(c.string()? == topic);
    let err = c.i16()?;
    ensure!(err == 0, "create error {err}");
    Ok(())
}

/// ListOffsets v1 of one partition at `timestamp` (-1 latest, -2
/// earliest): (error, offset).
pub fn list_offsets(addr: &str, topic: &str, partition: i32, timestamp: i64) -> Result<(i16, i64)> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&timestamp.to_be_bytes());
    let mut s = connect(addr)?;
    s.write_all(&request(2, 1, 17, &body))?;
    let resp = read_frame(&mut s)?.context("list offsets: closed")?;
    let mut c = Cur(&resp);
    ensure!(c.i32()? == 17);
    ensure!(c.i32()? == 1);
    ensure!(c.string()? == topic);
    ensure!(c.i32()? == 1);
    ensure!(c.i32()? == partition);
    let err = c.i16()?;
    c.i64()?; // timestamp
    Ok((err, c.i64()?))
}

/// ListOffsets v1 latest of one partition: (error, offset).
pub fn latest_offset(addr: &str, topic: &str, partition: i32) -> Result<(i16, i64)> {
    list_offsets(addr, topic, partition, -1)
}

/// Resident set of process `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

/// Raises this process's soft open-file limit to at least `want` (up to
/// the hard limit); returns the limit now in force.
pub fn raise_nofile(want: u64) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        ensure!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0,
            "getrlimit"
        );
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            ensure!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0, "setrlimit");
        }
    }
    Ok(lim.rlim_cur)
}

/// GET `path` from a plain-HTTP server: (status code, body).
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    http_request(addr, "GET", path).map(|(status, _, body)| (status, body))
}

/// The text of `GET /metrics` from a metrics listener (status 200).
pub fn scrape_metrics(metrics_addr: &str) -> Result<String> {
    let (status, text) = http_get(metrics_addr, "/metrics")?;
    ensure!(status == 200, "metrics status {status}");
    Ok(text)
}

/// The value of the sample `sample` (a name with its labels) in a
/// Prometheus text.
pub fn metric_value(text: &str, sample: &str) -> Result<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
        .with_context(|| format!("{sample} missing from the metrics"))?
        .parse()
        .context("metric value")
}

/// One HTTP/1.1 request: (status code, response head, body).
pub fn http_request(addr: &str, method: &str, path: &str) -> Result<(u16, String, String)> {
    let mut s = connect(addr)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).context("response is not UTF-8")?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("status line")?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .context("content-length")?;
    ensure!(
        len == body.len(),
        "content-length {len}, body {}",
        body.len()
    );
    Ok((status, head.to_string(), body.to_string()))
}
