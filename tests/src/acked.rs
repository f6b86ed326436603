//! Drives `tests/python/acked_producer.py` (a real confluent-kafka producer
//! printing every delivery report) and `verify_log.py` (reads a topic back
//! and checks it against those reports) for the crash and fault tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::{python, python_bin, workspace_root};

/// What a producer was asked to send; the verifier rebuilds values from it.
#[derive(Debug, Clone)]
pub struct Messages {
    pub topic: String,
    pub partitions: u32,
    pub tag: String,
    pub seed: u64,
    pub size_max: u32,
}

impl Messages {
    fn args(&self) -> Vec<String> {
        vec![
            "--topic".into(),
            self.topic.clone(),
            "--partitions".into(),
            self.partitions.to_string(),
            "--tag".into(),
            self.tag.clone(),
            "--seed".into(),
            self.seed.to_string(),
            "--size-max".into(),
            self.size_max.to_string(),
        ]
    }
}

/// A running `acked_producer.py`; its report lines are collected as they
/// come. Dropping it kills the process.
pub struct AckedProducer {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl AckedProducer {
    /// Starts the producer with `extra` arguments (see the script's doc).
    pub fn start(bootstrap: &str, msgs: &Messages, extra: &[&str]) -> Result<AckedProducer> {
        let script = workspace_root().join("tests/python/acked_producer.py");
        let mut child = Command::new(python_bin())
            .arg(script)
            .args(msgs.args())
            .args(extra)
            .env("BOOTSTRAP", bootstrap)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn acked_producer.py")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().context("piped stdout")?;
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut v) = l.lock() {
                    v.push(line);
                }
            }
        });
        let err = child.stderr.take().context("piped stderr")?;
        let e = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut s) = e.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Ok(AckedProducer {
            child: Some(child),
            lines,
            stderr,
        })
    }

    /// Every report line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn acks(&self) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.starts_with("ack "))
            .count()
    }

    /// Delivery failures so far: (partition, message, error code).
    pub fn errors(&self) -> Vec<(u32, u64, i32)> {
        self.lines()
            .iter()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w[..] {
                    ["err", p, i, code, ..] => {
                        Some((p.parse().ok()?, i.parse().ok()?, code.parse().ok()?))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits (bounded) for the script to exit; returns its `done` line.
    pub fn wait(&mut self, timeout: Duration) -> Result<String> {
        let Some(mut c) = self.child.take() else {
            bail!("producer not running")
        };
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = c.try_wait()? {
                break st;
            }
            if Instant::now() > deadline {
                c.kill().ok();
                c.wait().ok();
                bail!(
                    "producer still running after {timeout:?}\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread may lag the exit by a line or two.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(done) = self.lines().iter().find(|l| l.starts_with("done ")) {
                ensure!(
                    status.success(),
                    "producer exited {status}\n{}",
                    self.stderr()
                );
                return Ok(done.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "producer exited {status} without a done line\nlast lines: {:?}\n{}",
                    self.lines().iter().rev().take(5).collect::<Vec<_>>(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AckedProducer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

/// Writes `lines` to `path` for the verifier.
pub fn write_acks(path: &Path, lines: &[String]) -> Result<PathBuf> {
    std::fs::write(path, lines.join("\n") + "\n")?;
    Ok(path.to_path_buf())
}

/// Runs `verify_log.py` against the broker with the acks in `acks_file`
/// (see the script for exactly what it asserts); returns its `ok:` line.
pub fn verify(bootstrap: &str, msgs: &Messages, acks_file: &Path) -> Result<String> {
    let mut args = msgs.args();
    args.extend([
        "--acks".into(),
        acks_file.display().to_string(),
        "--ordered".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python("verify_log.py", bootstrap, &args)?;
    out.stdout
        .lines()
        .find(|l| l.starts_with("ok:"))
        .map(str::to_string)
        .context("verify_log.py printed no ok line")
}
