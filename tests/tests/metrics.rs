//! The `/metrics` endpoint of the real broker: a strict parser of the
//! Prometheus text exposition format (0.0.4) checks every scrape, and the
//! counters must move by exactly what one raw-protocol client did.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use spindle_tests::wire::{
    api_versions_v0, batch, connect, fetch_v4, http_request, parse_fetch_v4, parse_produce_v3,
    produce_v3, put_str, read_frame, request,
};
use spindle_tests::Broker;

type Labels = Vec<(String, String)>;
/// Sample name plus sorted labels.
type Key = (String, Labels);

/// A parsed scrape: family types and every sample's value.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: BTreeMap<Key, f64>,
}

fn valid_name(s: &str, colons: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

fn parse_value(v: &str) -> Result<f64> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().with_context(|| format!("bad value {v:?}")),
    }
}

/// `{a="x",b="y"}` (the braces already stripped) into pairs.
fn parse_labels(mut s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").context("label without =\"")?;
        ensure!(valid_name(name, false), "bad label name {name:?}");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => bail!("bad escape {other:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => bail!("raw newline in a label value"),
                Some((_, c)) => value.push(c),
                None => bail!("unterminated label value"),
            }
        };
        ensure!(
            !out.iter().any(|(n, _)| n == name),
            "label {name} given twice"
        );
        out.push((name.to_string(), value));
        s = &rest[end + 1..];
        s = match s.strip_prefix(',') {
            Some(r) => r,
            None if s.is_empty() => s,
            None => bail!("expected , between labels: {s:?}"),
        };
    }
    out.sort();
    Ok(out)
}

/// Which family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return Some(base);
            }
        }
    }
    None
}

/// The strict parser: HELP/TYPE before a family's samples, each once;
/// a family's samples together; names, labels, escapes and values valid;
/// no sample twice; histograms cumulative and consistent.
fn parse(text: &str) -> Result<Scrape> {
    ensure!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut sc = Scrape::default();
    let mut helped = HashSet::new();
    let mut done = HashSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        ensure!(!line.is_empty(), "empty line at {}", at());
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').with_context(at)?;
            ensure!(
                valid_name(name, true) && helped.insert(name.to_string()),
                "{}",
                at()
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').with_context(at)?;
            ensure!(valid_name(name, true), "{}", at());
            ensure!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{}",
                at()
            );
            ensure!(
                sc.types
                    .insert(name.to_string(), kind.to_string())
                    .is_none(),
                "TYPE twice: {}",
                at()
            );
            if let Some(prev) = current.replace(name.to_string()) {
                done.insert(prev);
            }
            continue;
        }
        ensure!(!line.starts_with('#'), "unknown comment {}", at());
        let (series, value) = line.rsplit_once(' ').with_context(at)?;
        let value = parse_value(value).with_context(at)?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                parse_labels(rest.strip_suffix('}').with_context(at)?).with_context(at)?,
            ),
            None => (series, Vec::new()),
        };
        ensure!(valid_name(name, true), "bad name {}", at());
        let family = family_of(name, &sc.types).with_context(|| format!("no TYPE for {}", at()))?;
        ensure!(
            current.as_deref() == Some(family) && !done.contains(family),
            "sample outside its family's block: {}",
            at()
        );
        let is_bucket = name.ends_with("_bucket") && family != name;
        ensure!(
            is_bucket == labels.iter().any(|(k, _)| k == "le"),
            "le only on histogram buckets: {}",
            at()
        );
        ensure!(
            sc.samples
                .insert((name.to_string(), labels), value)
                .is_none(),
            "sample twice: {}",
            at()
        );
    }
    check_histograms(&sc)?;
    Ok(sc)
}

fn check_histograms(sc: &Scrape) -> Result<()> {
    for (family, _) in sc.types.iter().filter(|(_, k)| *k == "histogram") {
        // Buckets per label set (le removed), in bound order.
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &sc.samples {
            if *name != format!("{family}_bucket") {
                continue;
            }
            let le = labels.iter().find(|(k, _)| k == "le").context("le")?;
            let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            series
                .entry(rest)
                .or_default()
                .push((parse_value(&le.1)?, *v));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            ensure!(
                buckets.last().is_some_and(|b| b.0.is_infinite()),
                "{family} {labels:?}: no +Inf bucket"
            );
            ensure!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} {labels:?}: buckets not cumulative"
            );
            let count = sc
                .samples
                .get(&(format!("{family}_count"), labels.clone()))
                .context("no _count")?;
            let sum = sc
                .samples
                .get(&(format!("{family}_sum"), labels.clone()))
                .context("no _sum")?;
            ensure!(
                buckets.last().map(|b| b.1) == Some(*count),
                "+Inf != _count"
            );
            ensure!(*sum >= 0.0, "negative _sum");
        }
    }
    Ok(())
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples
            .get(&(name.to_string(), l))
            .copied()
            .unwrap_or(0.0)
    }
}

fn scrape(addr: &str) -> Result<Scrape> {
    let (status, head, body) = http_request(addr, "GET", "/metrics")?;
    ensure!(status == 200, "status {status}");
    ensure!(
        head.lines()
            .any(|l| l
                .eq_ignore_ascii_case("content-type: text/plain; version=0.0.4; charset=utf-8")),
        "content type:\n{head}"
    );
    parse(&body).with_context(|| format!("scrape does not parse:\n{body}"))
}

/// Sends one request frame, reads its response; counts both directions
/// on the wire (prefixes included).
struct Counted {
    s: std::net::TcpStream,
    sent: u64,
    received: u64,
}

impl Counted {
    fn call(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        self.s.write_all(frame)?;
        self.sent += frame.len() as u64;
        let resp = read_frame(&mut self.s)?.context("closed")?;
        self.received += 4 + resp.len() as u64;
        Ok(resp)
    }
}

fn create_topics_v2(topic: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.push(0);
    request(19, 2, 100, &body)
}

#[test]
fn metrics_count_what_a_client_did_and_parse_strictly() -> Result<()> {
    let b = Broker::start(
        "metrics",
        &["--shards", "2", "--metrics-listen", "127.0.0.1:0"],
    )?;
    let m = b.metrics_addr().context("no `serving metrics on` line")?;
    let before = scrape(&m)?;
    ensure!(before.get("spindle_scrape_shards_missing", &[]) == 0.0);
    ensure!(
        before
            .types
            .get("spindle_request_duration_seconds")
            .map(String::as_str)
            == Some("histogram")
    );

    let mut c = Counted {
        s: connect(b.addr())?,
        sent: 0,
        received: 0,
    };
    c.call(&create_topics_v2("m"))?;
    let mut log_bytes = 0u64;
    for i in 0..5 {
        let records = batch(&[format!("metric-{i}").repeat(10).as_bytes()], 0);
        log_bytes += records.len() as u64;
        let (err, base) = parse_produce_v3(&c.call(&produce_v3(i, -1, "m", 0, &records))?, i)?;
        ensure!(
            err == 0 && base == i64::from(i),
            "produce {i}: error {err} base {base}"
        );
    }
    for i in 0..3 {
        let (err, hw, records) = parse_fetch_v4(
            &c.call(&fetch_v4(10 + i, "m", 0, 0, 0, 0, 1 << 20))?,
            10 + i,
        )?;
        ensure!(err == 0 && hw == 5 && !records.is_empty(), "fetch {i}");
    }
    c.call(&api_versions_v0(20))?;

    // Counters are updated as responses are written; allow the scrape a
    // moment to see the last one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape(&m)?;
        let seen = s.get("spindle_requests_total", &[("api", "ApiVersions")])
            - before.get("spindle_requests_total", &[("api", "ApiVersions")]);
        if seen >= 1.0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    for (api, n) in [
        ("CreateTopics", 1.0),
        ("Produce", 5.0),
        ("Fetch", 3.0),
        ("ApiVersions", 1.0),
        ("Metadata", 0.0),
    ] {
        ensure!(
            delta("spindle_requests_total", &[("api", api)]) == n,
            "{api} requests"
        );
        ensure!(
            delta("spindle_request_duration_seconds_count", &[("api", api)]) == n,
            "{api} latency count"
        );
        ensure!(
            delta(
                "spindle_request_duration_seconds_bucket",
                &[("api", api), ("le", "+Inf")]
            ) == n,
            "{api} +Inf bucket"
        );
    }
    ensure!(
        delta("spindle_received_bytes_total", &[]) == c.sent as f64,
        "bytes in: sent {}",
        c.sent
    );
    ensure!(
        delta("spindle_sent_bytes_total", &[]) == c.received as f64,
        "bytes out: received {}",
        c.received
    );
    ensure!(delta("spindle_connections_accepted_total", &[]) == 1.0);
    ensure!(
        after.get("spindle_connections", &[]) == 1.0,
        "one live connection"
    );
    for reason in ["max_connections", "max_connections_per_ip"] {
        ensure!(after.samples.contains_key(&(
            "spindle_connections_rejected_total".to_string(),
            vec![("reason".to_string(), reason.to_string())]
        )));
    }
    let p = [("partition", "0"), ("topic", "m")];
    ensure!(after.get("spindle_partition_log_end_offset", &p) == 5.0);
    ensure!(after.get("spindle_partition_high_watermark", &p) == 5.0);
    ensure!(after.get("spindle_partition_log_start_offset", &p) == 0.0);
    ensure!(
        after.get("spindle_partition_log_size_bytes", &p) == log_bytes as f64,
        "log bytes {log_bytes}"
    );
    ensure!(after.get("spindle_partition_poisoned", &p) == 0.0);
    ensure!(
        delta("spindle_batch_cache_hits_total", &[]) == 3.0,
        "three fetches from the cache"
    );
    ensure!(delta("spindle_batch_cache_misses_total", &[]) == 0.0);
    let ratio = after.get("spindle_batch_cache_hit_ratio", &[]);
    ensure!(
        (0.0..=1.0).contains(&ratio) && ratio > 0.0,
        "hit ratio {ratio}"
    );

    // A bad frame is counted by reason, and the gauge follows closes.
    let mut bad = connect(b.addr())?;
    bad.write_all(&(-5i32).to_be_bytes())?;
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(&m)?;
        let closed = s.get(
            "spindle_connections_closed_total",
            &[("reason", "bad_frame")],
        );
        if closed == 1.0 && s.get("spindle_connections", &[]) == 0.0 {
            break;
        }
        ensure!(Instant::now() < deadline, "bad frame closes {closed}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Other paths and methods.
    ensure!(http_request(&m, "GET", "/")?.0 == 404);
    ensure!(http_request(&m, "POST", "/metrics")?.0 == 405);
    Ok(())
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    for bad in [
        "x 1\n",                                 // no TYPE
        "# TYPE x counter\nx 1\nx 2\n",          // sample twice
        "# TYPE x gauge\nx{a=\"1} 1\n",          // unterminated
        "# TYPE x gauge\nx{a=\"\\q\"} 1\n",      // bad escape
        "# TYPE x gauge\nx one\n",               // bad value
        "# TYPE x gauge\n# TYPE y gauge\nx 1\n", // outside its block
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE x gauge\nx 1", // no final newline
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
    let good = "# HELP h a histogram\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n# TYPE g gauge\ng{t=\"a\\\"b\"} -1\n";
    let sc = parse(good).unwrap();
    assert_eq!(sc.get("g", &[("t", "a\"b")]), -1.0);
}
