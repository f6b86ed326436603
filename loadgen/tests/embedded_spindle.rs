//! loadgen against the real broker: the `loadgen` binary starts `spindle`
//! itself (the embedded default, found through $SPINDLE_BIN) and the
//! counts it reports must agree exactly: every record sent is acknowledged
//! and consumed once. The runs are bounded by record count and by a
//! timeout on the child.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const RUN_TIMEOUT: Duration = Duration::from_secs(180);

fn loadgen(args: &[&str], cwd: &Path) -> Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .current_dir(cwd)
        .env("SPINDLE_BIN", spindle_tests::spindle_bin())
        .env("SPINDLE_DATA_BASE", cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("spawn loadgen")?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            bail!(
                "loadgen did not finish in {RUN_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

fn check(out: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "loadgen exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

#[test]
fn e2e_counts_agree_and_results_are_written() -> Result<()> {
    let scratch = spindle_tests::scratch_dir("loadgen-e2e");
    let results = scratch.path().join("results");
    let results_s = results.to_string_lossy().into_owned();
    let out = loadgen(
        &[
            "e2e",
            "--topic",
            "lg-e2e",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--throughput",
            "20000",
            "--partitions",
            "4",
            "--report-interval",
            "0",
            "--results-dir",
            &results_s,
        ],
        scratch.path(),
    )?;
    let stdout = check(&out)?;
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("20000 records sent, "), "{stdout}");
    assert!(first.contains(" ms 99.9th."), "{stdout}");
    assert!(
        stdout.contains("totals: sent 20000 acked 20000 consumed 20000 errors 0;"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("result.json"))?)?;
    assert_eq!(json["messageSize"], 100);
    assert_eq!(json["loadgen"]["recordsConsumed"], 20000);
    // The embedded broker's own CPU time is measured and reported.
    assert!(stdout.contains("broker cpu: "), "{stdout}");
    assert!(
        json["loadgen"]["brokerCpuSeconds"].as_f64().unwrap_or(0.0) > 0.0,
        "{}",
        json["loadgen"]
    );
    assert!(
        json["aggregatedEndToEndLatency99pct"]
            .as_f64()
            .unwrap_or(-1.0)
            > 0.0
    );
    for f in [
        "publish-latency.hgrm",
        "e2e-latency.hgrm",
        "latency-spectrum.svg",
        "throughput.svg",
        "p99.svg",
        "index.html",
    ] {
        assert!(results.join(f).is_file(), "{f} missing");
    }
    Ok(())
}

#[test]
fn idempotent_compressed_keyed_produce_is_fully_acknowledged() -> Result<()> {
    let scratch = spindle_tests::scratch_dir("loadgen-idem");
    let out = loadgen(
        &[
            "e2e",
            "--topic",
            "lg-idem",
            "--num-records",
            "30000",
            "--record-size",
            "64",
            "--throughput",
            "-1",
            "--partitions",
            "3",
            "--keys",
            "round-robin",
            "--report-interval",
            "0",
            "--no-results",
            "--from",
            "earliest",
            "--producer-props",
            "acks=all",
            "enable.idempotence=true",
            "compression.type=zstd",
        ],
        scratch.path(),
    )?;
    let stdout = check(&out)?;
    assert!(
        stdout.contains("totals: sent 30000 acked 30000 consumed 30000 errors 0;"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn group_consumers_read_everything_once() -> Result<()> {
    let scratch = spindle_tests::scratch_dir("loadgen-group");
    let out = loadgen(
        &[
            "e2e",
            "--topic",
            "lg-group",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--partitions",
            "4",
            "--consumers",
            "2",
            "--group",
            "--report-interval",
            "0",
            "--no-results",
            "--spindle-arg=--group-initial-rebalance-delay-ms=0",
        ],
        scratch.path(),
    )?;
    let stdout = check(&out)?;
    assert!(
        stdout.contains("totals: sent 20000 acked 20000 consumed 20000 errors 0;"),
        "{stdout}"
    );
    Ok(())
}
