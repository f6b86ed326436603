//! Running the `spindle` admin subcommands in black-box tests
//! (`tests/admin_cli*.rs`): against a started broker, checking exit codes
//! and messages, parsing `--format json`.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::{run_bounded, spindle_bin, Broker, Output, CLIENT_TIMEOUT};

/// `spindle ARGS --bootstrap BROKER`, with `stdin`.
pub fn spindle(broker: &Broker, args: &[&str], stdin: &[u8]) -> Result<Output> {
    let mut cmd = Command::new(spindle_bin());
    cmd.args(args).arg("--bootstrap").arg(broker.addr());
    run_bounded(cmd, stdin, CLIENT_TIMEOUT)
}

pub fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// Runs a command that must succeed; its stdout.
pub fn ok(broker: &Broker, args: &[&str], stdin: &[u8]) -> Result<String> {
    let out = spindle(broker, args, stdin)?;
    ensure!(
        out.status.success(),
        "spindle {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    Ok(out.stdout)
}

/// Runs a command that must succeed and print JSON; the document.
pub fn json(broker: &Broker, args: &[&str], stdin: &[u8]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let s = ok(broker, &all, stdin)?;
    serde_json::from_str(&s).with_context(|| format!("spindle {args:?}: not JSON:\n{s}"))
}

/// Runs a command that must fail with `exit` and say `says` on stderr.
pub fn fails(broker: &Broker, args: &[&str], exit: i32, says: &str) -> Result<Output> {
    let out = spindle(broker, args, b"")?;
    ensure!(
        code(&out) == Some(exit) && out.stderr.contains(says),
        "spindle {args:?}: expected exit {exit} saying {says:?}, got {:?}:\nstdout:\n{}\nstderr:\n{}",
        code(&out),
        out.stdout,
        out.stderr
    );
    Ok(out)
}

/// JSON lines of `consume --format json`.
pub fn lines(s: &str) -> Result<Vec<Value>> {
    s.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON line: {l}")))
        .collect()
}
