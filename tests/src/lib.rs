//! Harness for the black-box tests: start the real `spindle` binary on a
//! free loopback port with a data directory on a real filesystem, and
//! drive it with real Kafka clients (kcat, Python clients, ...). Starting,
//! watching and stopping the process is loadgen's child-broker launcher,
//! shared with loadgen's own broker.
//!
//! Every wait here is bounded; a broker that does not come up in time fails
//! the test with its log attached instead of hanging it.

pub mod kafka;

use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
pub use loadgen::child_broker::{
    parse_listening, parse_metrics_line, ChildBroker, Launch, STARTUP_TIMEOUT,
};

pub mod acked;
pub mod admin_cli;
pub mod hostile;
pub mod wire;

/// How long a client command may run before it is killed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// The `spindle` binary under test: `$SPINDLE_BIN`, or the workspace's debug
/// build, which is built on first use (never one found on PATH or beside
/// the test executable, as loadgen looks: tests run what the tree builds).
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
    loadgen::child_broker::real_fs_tempdir(&base, &format!("{name}-")).expect("create scratch dir")
}

/// A running broker: a [`ChildBroker`] (whose methods it has) of the
/// binary under test, with its own scratch dir. Dropping it kills the
/// process, and prints its log when the test is failing.
pub struct Broker {
    broker: ChildBroker,
    _scratch: tempfile::TempDir,
}

impl Deref for Broker {
    type Target = ChildBroker;

    fn deref(&self) -> &ChildBroker {
        &self.broker
    }
}

impl DerefMut for Broker {
    fn deref_mut(&mut self) -> &mut ChildBroker {
        &mut self.broker
    }
}

impl Broker {
    /// Start a broker on a free port with a fresh data dir and `extra_args`.
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
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "RUST_LOG".into(),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ));
        let launch = Launch {
            bin: spindle_bin(),
            data_dir,
            args: extra_args.iter().map(|s| s.to_string()).collect(),
            env,
            log_lines_max: usize::MAX,
        };
        Ok(Broker {
            broker: ChildBroker::start_on_free_port(launch)?,
            _scratch: scratch,
        })
    }

    /// Start a broker on a free port with its data in `data_dir` (for a
    /// filesystem the test made), and `extra_args`.
    pub fn start_in(name: &str, data_dir: &Path, extra_args: &[&str]) -> Result<Broker> {
        Broker::start_with(name, Some(data_dir.to_path_buf()), extra_args, &[])
    }

    /// Starts again on the same port and data dir and SIGKILLs the process
    /// `after` later, ready or not: a kill during startup and recovery.
    /// Returns whether it had reported `listening on` by then.
    pub fn start_and_kill_after(&mut self, after: Duration) -> Result<bool> {
        let listen = self.addr().to_string();
        self.note("--- start, killed during startup ---");
        let rx = self.spawn(&listen)?;
        std::thread::sleep(after);
        self.kill9()?;
        Ok(rx.try_iter().any(|l| parse_listening(&l).is_some()))
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
    fn bounded_run_kills_a_hung_command() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let t = Instant::now();
        let r = run_bounded(cmd, b"", Duration::from_millis(200));
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
