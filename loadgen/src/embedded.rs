//! The embedded broker: with no --bootstrap, loadgen starts `spindle` on
//! 127.0.0.1:0 with a temporary data directory on a real filesystem
//! (O_DIRECT fails on tmpfs), waits for its `listening on HOST:PORT` line,
//! and stops it with SIGTERM when the run is over.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of broker output kept for error messages.
const LOG_LINES_MAX: usize = 200;

/// Where `spindle` is: next to the loadgen executable, then $SPINDLE_BIN,
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

/// A directory for the broker's data on a real filesystem: $SPINDLE_DATA_BASE,
/// else target/ or the current directory (never /tmp, often tmpfs).
fn data_base() -> PathBuf {
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

pub struct EmbeddedBroker {
    child: Child,
    pub addr: String,
    pub pid: u32,
    _data: tempfile::TempDir,
}

/// Parses `listening on HOST:PORT` out of a log line.
pub fn parse_listening(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
        .collect();
    let (_, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(addr)
}

impl EmbeddedBroker {
    pub fn start(extra_args: &[String]) -> Result<EmbeddedBroker> {
        let bin = find_spindle()?;
        let base = data_base();
        std::fs::create_dir_all(&base)?;
        if on_tmpfs(&base) {
            bail!(
                "{} is on tmpfs; set SPINDLE_DATA_BASE to a directory on a real filesystem",
                base.display()
            );
        }
        let data = tempfile::Builder::new()
            .prefix("loadgen-spindle-")
            .tempdir_in(&base)
            .with_context(|| format!("create data dir under {}", base.display()))?;
        let mut child = Command::new(&bin)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data.path())
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            // Keeps draining the broker's output so its pipes never fill.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut log = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        eprintln!(
                            "loadgen: embedded spindle ({}) listening on {addr}",
                            bin.display()
                        );
                        // Drain the rest in the background.
                        std::thread::spawn(move || while rx.recv().is_ok() {});
                        return Ok(EmbeddedBroker {
                            pid: child.id(),
                            child,
                            addr,
                            _data: data,
                        });
                    }
                    if log.len() < LOG_LINES_MAX {
                        log.push(line);
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(anyhow!(
                        "spindle did not log `listening on` within {:?}; its output:\n{}",
                        STARTUP_TIMEOUT,
                        log.join("\n")
                    ));
                }
            }
        }
    }

    /// SIGTERM, then wait (bounded); SIGKILL if it does not go.
    pub fn stop(mut self) -> Result<()> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("loadgen: embedded spindle exited with {status}");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("embedded spindle ignored SIGTERM for {SHUTDOWN_TIMEOUT:?}; killed")
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
}
