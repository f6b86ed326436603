//! A `spindle` broker started as a child process: loadgen's own broker
//! when no --bootstrap is given, and the black-box tests' broker (tests/
//! uses this module through loadgen's library target; it links nothing of
//! the engine or the server).
//!
//! Binary discovery, a data directory on a real filesystem (O_DIRECT fails
//! on tmpfs), the port (the broker's own pick, or a free one below the
//! ephemeral range), startup bounded by a deadline on the broker's
//! `listening on HOST:PORT` line, its output drained and kept, SIGTERM to
//! stop and SIGKILL on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// How long a broker may take to print `listening on`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broker may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restart retries while the old process's port lingers.
const RESTART_RETRY: Duration = Duration::from_secs(10);

/// Where `spindle` is: next to the running executable, then $SPINDLE_BIN,
/// then PATH.
pub fn find_spindle() -> Result<PathBuf> {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join("spindle");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    if let Some(p) = std::env::var_os("SPINDLE_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("SPINDLE_BIN={} is not a file", p.display());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("spindle");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!("no spindle binary next to loadgen, in $SPINDLE_BIN or on PATH; build it (cargo build --release -p spindle-net) or pass --bootstrap")
}

/// Where broker data directories go by default: $SPINDLE_DATA_BASE, else
/// target/ or the current directory (never /tmp, often tmpfs).
pub fn default_data_base() -> PathBuf {
    if let Some(b) = std::env::var_os("SPINDLE_DATA_BASE") {
        return PathBuf::from(b);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    if cwd.join("target").is_dir() {
        cwd.join("target")
    } else {
        cwd
    }
}

/// A fresh directory under `base` (created if missing), removed when
/// dropped; refused if `base` is on tmpfs.
pub fn real_fs_tempdir(base: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(base).with_context(|| format!("create {}", base.display()))?;
    if on_tmpfs(base) {
        bail!(
            "{} is on tmpfs; set SPINDLE_DATA_BASE to a directory on a real filesystem",
            base.display()
        );
    }
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .with_context(|| format!("create data dir under {}", base.display()))
}

fn on_tmpfs(p: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return false;
    };
    let Ok(p) = p.canonicalize() else {
        return false;
    };
    let mut best: Option<(usize, bool)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        if p.starts_with(f[1]) && best.is_none_or(|(n, _)| f[1].len() >= n) {
            best = Some((f[1].len(), f[2] == "tmpfs"));
        }
    }
    best.is_some_and(|(_, t)| t)
}

/// How to start the broker. `--listen` and `--data-dir` come first, then
/// `args`; `env` is added to the inherited environment, in order.
#[derive(Debug, Clone)]
pub struct Launch {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Lines of the broker's output kept (the first ones; the rest is
    /// drained and dropped), so a long run cannot grow it without bound.
    pub log_lines_max: usize,
}

/// The broker's output, both streams, line by line.
struct Log {
    text: String,
    lines: usize,
    lines_max: usize,
}

impl Log {
    fn push(&mut self, line: &str) {
        if self.lines < self.lines_max {
            self.text.push_str(line);
            self.text.push('\n');
            self.lines += 1;
        }
    }
}

/// A broker process. Dropping it kills the process.
pub struct ChildBroker {
    launch: Launch,
    child: Option<Child>,
    addr: String,
    log: Arc<Mutex<Log>>,
}

impl ChildBroker {
    fn new(launch: Launch) -> ChildBroker {
        let log = Log {
            text: String::new(),
            lines: 0,
            lines_max: launch.log_lines_max,
        };
        ChildBroker {
            launch,
            child: None,
            addr: String::new(),
            log: Arc::new(Mutex::new(log)),
        }
    }

    /// Starts the broker listening on `listen` (`127.0.0.1:0` lets it pick
    /// a port) and waits for its `listening on` line.
    pub fn start(launch: Launch, listen: &str) -> Result<ChildBroker> {
        let mut b = ChildBroker::new(launch);
        b.spawn_ready(listen)?;
        Ok(b)
    }

    /// Starts the broker on a free port below the kernel's ephemeral range
    /// (32768-60999 here). A broker restarted on its port while clients
    /// keep reconnecting should not sit in that range: a client's connect
    /// to a port nobody listens on can pick that very port as its own
    /// source port and connect to itself (TCP simultaneous open), which
    /// holds the port and hands the client its own request back as the
    /// answer. (A port also stays busy for a moment after a SIGKILL while
    /// the kernel tears down the dead broker's io_uring; `restart` retries.)
    pub fn start_on_free_port(launch: Launch) -> Result<ChildBroker> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut b = ChildBroker::new(launch);
        let seed = std::process::id().wrapping_mul(2_654_435_761);
        let mut last = None;
        for _ in 0..50 {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7_919)) % 12_000) as u16;
            let listen = format!("127.0.0.1:{port}");
            if std::net::TcpListener::bind(&listen).is_err() {
                continue;
            }
            match b.spawn_ready(&listen) {
                Ok(()) => return Ok(b),
                Err(e) if b.log().contains("Address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no free port below the ephemeral range")))
    }

    /// Starts the process and waits (bounded) for `listening on`; kills it
    /// if the line does not come.
    fn spawn_ready(&mut self, listen: &str) -> Result<()> {
        let rx = self.spawn(listen)?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        self.addr = addr;
                        return Ok(());
                    }
                }
                Err(_) => {
                    let _ = self.kill9();
                    bail!(
                        "spindle did not log `listening on` within {STARTUP_TIMEOUT:?}; its output:\n{}",
                        self.log()
                    );
                }
            }
        }
    }

    /// Starts the process without waiting for it to be ready. Its output
    /// lines go to the log and to the returned channel (dropping it is
    /// fine: the output is still drained into the log).
    pub fn spawn(&mut self, listen: &str) -> Result<mpsc::Receiver<String>> {
        let l = &self.launch;
        let mut child = Command::new(&l.bin)
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(&l.data_dir)
            .args(&l.args)
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", l.bin.display()))?;
        let (tx, rx) = mpsc::channel::<String>();
        let streams = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let tx = tx.clone();
            let log = self.log.clone();
            // Keeps draining the broker's output so its pipes never fill.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut l) = log.lock() {
                        l.push(&line);
                    }
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        self.child = Some(child);
        Ok(rx)
    }

    /// Starts again on the same port and data dir.
    pub fn restart(&mut self) -> Result<()> {
        let listen = self.addr.clone();
        self.note("--- restart ---");
        // The port was ours a moment ago; retry briefly if it lingers.
        let deadline = Instant::now() + RESTART_RETRY;
        loop {
            match self.spawn_ready(&listen) {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Adds a line of our own to the log (a marker between runs).
    pub fn note(&self, line: &str) {
        if let Ok(mut l) = self.log.lock() {
            l.push(line);
        }
    }

    /// `HOST:PORT` the broker listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The port it listens on (0 before it first reported one).
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// `HOST:PORT` of the metrics endpoint, from the broker's
    /// `serving metrics on HOST:PORT` line (started with
    /// `--metrics-listen`).
    pub fn metrics_addr(&self) -> Option<String> {
        self.log().lines().rev().find_map(parse_metrics_line)
    }

    pub fn data_dir(&self) -> &Path {
        &self.launch.data_dir
    }

    /// Everything the broker printed so far (up to `log_lines_max` lines).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.text.clone()).unwrap_or_default()
    }

    /// Waits (bounded) until a line of the log satisfies `pred`: the
    /// broker's output arrives through a reader thread, so a line written a
    /// moment ago may not be in [`ChildBroker::log`] yet. Returns the log
    /// either way; the caller checks.
    pub fn wait_for_log_line(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.lines().any(&pred) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL, no chance to flush.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
        Ok(())
    }

    /// SIGTERM, then wait (bounded) for the exit; SIGKILL if it does not
    /// go. Returns the exit status.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut c) = self.child.take() else {
            bail!("broker not running")
        };
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                c.kill().ok();
                c.wait().ok();
                bail!(
                    "spindle ignored SIGTERM for {SHUTDOWN_TIMEOUT:?}; killed\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Extracts `HOST:PORT` from a log line containing `listening on HOST:PORT`
/// (port 0 is not an address yet).
pub fn parse_listening(line: &str) -> Option<String> {
    addr_after(line, "listening on ", &[',', '"'])
}

/// Extracts `HOST:PORT` from a line containing `serving metrics on HOST:PORT`.
pub fn parse_metrics_line(line: &str) -> Option<String> {
    addr_after(line, "serving metrics on ", &[])
}

/// The `HOST:PORT` after `marker`, ended by white space or one of `ends`.
fn addr_after(line: &str, marker: &str, ends: &[char]) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !ends.contains(c))
        .collect();
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .map(|_| addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_forms() {
        assert_eq!(
            parse_listening("INFO spindle: listening on 127.0.0.1:40123").as_deref(),
            Some("127.0.0.1:40123")
        );
        assert_eq!(
            parse_listening("2026-11-22T09:00:00Z INFO listening on 127.0.0.1:9092 shards=2")
                .as_deref(),
            Some("127.0.0.1:9092")
        );
        assert_eq!(
            parse_listening("{\"msg\":\"listening on 127.0.0.1:5\"}").as_deref(),
            Some("127.0.0.1:5")
        );
        assert_eq!(parse_listening("listening on nowhere"), None);
        assert_eq!(parse_listening("starting"), None);
    }

    #[test]
    fn parses_listening_line() {
        assert_eq!(
            parse_listening("2026-11-22T08:00:00Z INFO spindle: listening on 127.0.0.1:40123"),
            Some("127.0.0.1:40123".to_string())
        );
        assert_eq!(parse_listening("listening on 127.0.0.1:0"), None);
        assert_eq!(parse_listening("starting shard 0"), None);
        assert_eq!(
            parse_listening("listening on [::1]:9092, advertised as ..."),
            Some("[::1]:9092".to_string())
        );
    }

    #[test]
    fn kept_log_is_bounded() {
        let mut log = Log {
            text: String::new(),
            lines: 0,
            lines_max: 2,
        };
        for l in ["a", "b", "c"] {
            log.push(l);
        }
        assert_eq!(log.text, "a\nb\n");
    }
}
