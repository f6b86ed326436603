//! Harness for the black-box tests: start the real `spindle` binary on an
//! ephemeral loopback port with a data directory on a real filesystem, and
//! drive it with real Kafka clients (kcat, Python clients, ...).
//!
//! Every wait here is bounded; a broker that does not come up in time fails
//! the test with its log attached instead of hanging it.

pub mod kafka;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub mod acked;
pub mod hostile;
pub mod wire;

/// How long a broker may take to print `listening on`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client command may run before it is killed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// The `spindle` binary under test: `$SPINDLE_BIN`, or the workspace's debug
/// build, which is built on first use.
pub fn spindle_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("SPINDLE_BIN") {
            return PathBuf::from(p);
        }
        let root = workspace_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "spindle-net", "--bin", "spindle"])
            .current_dir(&root)
            .status()
            .expect("run cargo build for the spindle binary");
        assert!(status.success(), "cargo build -p spindle-net failed");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("spindle")
    })
    .clone()
}

/// A scratch directory on the workspace's filesystem (never tmpfs: O_DIRECT
/// needs a real one), removed on drop.
pub fn scratch_dir(name: &str) -> tempfile::TempDir {
    let base = workspace_root().join("target").join("test-data");
    std::fs::create_dir_all(&base).expect("create target/test-data");
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(base)
        .expect("create scratch dir")
}

/// A running broker. Dropping it kills the process.
pub struct Broker {
    child: Option<Child>,
    addr: String,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    log: Arc<Mutex<String>>,
    _scratch: Option<tempfile::TempDir>,
}

impl Broker {
    /// Start a broker on 127.0.0.1:0 with a fresh data dir and `extra_args`.
    pub fn start(name: &str, extra_args: &[&str]) -> Result<Broker> {
        Broker::start_with(name, None, extra_args, &[])
    }

    /// As [`Broker::start`], with the data dir at `data_dir` (a fresh one in
    /// a scratch dir if `None`) and extra environment variables, kept for
    /// restarts.
    pub fn start_with(
        name: &str,
        data_dir: Option<PathBuf>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Broker> {
        let scratch = scratch_dir(name);
        let data_dir = data_dir.unwrap_or_else(|| scratch.path().join("data"));
        let mut broker = Broker {
            child: None,
            addr: String::new(),
            data_dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: Arc::new(Mutex::new(String::new())),
            _scratch: Some(scratch),
        };
        broker.spawn_on_free_port()?;
        Ok(broker)
    }

    /// Starts the broker on a free port below the kernel's ephemeral range
    /// (32768-60999 here). A broker restarted on its port while clients
    /// keep reconnecting should not sit in that range: a client's connect
    /// to a port nobody listens on can pick that very port as its own
    /// source port and connect to itself (TCP simultaneous open), which
    /// holds the port and hands the client its own request back as the
    /// answer. (A port also stays busy for a moment after a SIGKILL while
    /// the kernel tears down the dead broker's io_uring; `restart` retries.)
    fn spawn_on_free_port(&mut self) -> Result<()> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seed = std::process::id().wrapping_mul(2_654_435_761);
        let mut last = None;
        for _ in 0..50 {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7_919)) % 12_000) as u16;
            let listen = format!("127.0.0.1:{port}");
            if std::net::TcpListener::bind(&listen).is_err() {
                continue;
            }
            match self.spawn(&listen) {
                Ok(()) => return Ok(()),
                Err(e) if self.log().contains("Address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no free port below the ephemeral range")))
    }

    /// Start a broker on 127.0.0.1:0 with its data in `data_dir` (for a
    /// filesystem the test made), and `extra_args`.
    pub fn start_in(name: &str, data_dir: &Path, extra_args: &[&str]) -> Result<Broker> {
        Broker::start_with(name, Some(data_dir.to_path_buf()), extra_args, &[])
    }

    fn spawn(&mut self, listen: &str) -> Result<()> {
        let rx = self.spawn_child(listen)?;
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
                        "broker did not report `listening on` in time\n{}",
                        self.log()
                    );
                }
            }
        }
    }

    /// Starts the process; its output lines go to the log and the channel.
    fn spawn_child(&mut self, listen: &str) -> Result<mpsc::Receiver<String>> {
        let mut cmd = Command::new(spindle_bin());
        cmd.arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawn spindle")?;
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let tx = tx.clone();
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut l) = log.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        self.child = Some(child);
        Ok(rx)
    }

    /// Starts again on the same port and data dir and SIGKILLs the process
    /// `after` later, ready or not: a kill during startup and recovery.
    /// Returns whether it had reported `listening on` by then.
    pub fn start_and_kill_after(&mut self, after: Duration) -> Result<bool> {
        let listen = self.addr.clone();
        self.log
            .lock()
            .map(|mut l| l.push_str("--- start, killed during startup ---\n"))
            .ok();
        let rx = self.spawn_child(&listen)?;
        std::thread::sleep(after);
        self.kill9()?;
        Ok(rx.try_iter().any(|l| parse_listening(&l).is_some()))
    }

    /// `HOST:PORT` the broker listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("addr has a port")
    }

    /// `HOST:PORT` of the metrics endpoint, from the broker's
    /// `serving metrics on HOST:PORT` line (started with
    /// `--metrics-listen`).
    pub fn metrics_addr(&self) -> Option<String> {
        self.log().lines().rev().find_map(parse_metrics_line)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the broker printed so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits (bounded) until a line of the log satisfies `pred`: the
    /// broker's output reaches the test through a reader thread, so a line
    /// written a moment ago may not be in [`Broker::log`] yet. Returns the
    /// log either way; the caller checks.
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

    /// SIGTERM, then wait (bounded) for a clean exit. Returns the exit status.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut c) = self.child.take() else {
            bail!("broker not running")
        };
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                c.kill().ok();
                c.wait().ok();
                bail!("broker ignored SIGTERM for 30 s\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start again on the same port and data dir.
    pub fn restart(&mut self) -> Result<()> {
        let listen = self.addr.clone();
        self.log
            .lock()
            .map(|mut l| l.push_str("--- restart ---\n"))
            .ok();
        // The port was ours a moment ago; retry briefly if it lingers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(&listen) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.kill9();
        if std::thread::panicking() {
            eprintln!("--- broker log ---\n{}", self.log());
        }
    }
}

/// Extract `HOST:PORT` from a log line containing `listening on HOST:PORT`.
pub fn parse_listening(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != '"')
        .collect();
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .map(|_| addr)
}

/// Extract `HOST:PORT` from a line containing `serving metrics on HOST:PORT`.
pub fn parse_metrics_line(line: &str) -> Option<String> {
    let rest = &line[line.find("serving metrics on ")? + "serving metrics on ".len()..];
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .map(|_| addr)
}

/// Output of a finished client command.
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run a command with a time bound, feeding `stdin`.
pub fn run_bounded(mut cmd: Command, stdin: &[u8], timeout: Duration) -> Result<Output> {
    use std::io::Write;
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {desc}"))?;
    let mut input = child.stdin.take().expect("piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
            return Err(anyhow!(
                "{desc} timed out after {timeout:?}\nstderr:\n{stderr}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Ok(Output {
        status,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned(),
    })
}

/// Run a Python script from `tests/python/` with `BOOTSTRAP` set and extra
/// arguments; fails with its output when it exits non-zero.
pub fn python(script: &str, bootstrap: &str, args: &[&str]) -> Result<Output> {
    let path = workspace_root().join("tests").join("python").join(script);
    let mut cmd = Command::new(python_bin());
    cmd.arg(&path).args(args).env("BOOTSTRAP", bootstrap);
    let out = run_bounded(cmd, b"", CLIENT_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "{script} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(out)
}

/// Run a Node script from `tests/node/` (kafkajs, installed there by
/// `scripts/setup`) with `BOOTSTRAP` set; fails with its output when it
/// exits non-zero.
pub fn node(script: &str, bootstrap: &str, args: &[&str]) -> Result<Output> {
    let dir = workspace_root().join("tests").join("node");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .env("BOOTSTRAP", bootstrap);
    let out = run_bounded(cmd, b"", CLIENT_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "{script} failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(out)
}

/// The Python interpreter with the client libraries `scripts/setup` installed.
pub fn python_bin() -> PathBuf {
    let venv = workspace_root()
        .join("target")
        .join("pyenv")
        .join("bin")
        .join("python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bounded_run_kills_a_hung_command() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let t = Instant::now();
        let r = run_bounded(cmd, b"", Duration::from_millis(200));
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
