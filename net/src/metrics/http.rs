//! The HTTP/1.1 server of `/metrics`, on a helper thread: one request
//! per connection, GET /metrics only, every I/O bounded in time. It never
//! touches shard state but through the shards' reports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use tracing::{debug, warn};

use super::scrape::{scrape, Derived, ScrapeTx};
use crate::constants::{METRICS_IO_TIMEOUT_MS, METRICS_REQUEST_BYTES_MAX};

/// Binds `addr` and serves `/metrics` on a helper thread, adding the
/// `derived` families to every scrape; returns the bound address.
pub fn start(
    addr: &str,
    shards: Vec<ScrapeTx>,
    derived: Vec<Derived>,
) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let listener = TcpListener::bind(addr).with_context(|| format!("metrics listen on {addr}"))?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("spindle-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = serve_http(s, &shards, &derived) {
                            debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "metrics accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
    Ok(local)
}

/// One HTTP/1.x exchange, then close. Requests are served one at a time:
/// this is for a scraper, and the I/O timeout bounds a slow one.
fn serve_http(mut s: TcpStream, shards: &[ScrapeTx], derived: &[Derived]) -> std::io::Result<()> {
    let timeout = Some(Duration::from_millis(METRICS_IO_TIMEOUT_MS));
    s.set_read_timeout(timeout)?;
    s.set_write_timeout(timeout)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= METRICS_REQUEST_BYTES_MAX {
            return respond(&mut s, "431 Request Header Fields Too Large", "");
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => respond(&mut s, "200 OK", &scrape(shards, derived)),
        ("GET", _) => respond(&mut s, "404 Not Found", "not found; try /metrics\n"),
        _ => respond(&mut s, "405 Method Not Allowed", ""),
    }
}

fn respond(s: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}
