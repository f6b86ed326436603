//! What the broker says about its partitions when things go wrong: a
//! partition poisoned by a failed write (a full filesystem: a small ext4
//! image, loop-mounted, which needs root as CI has) and a partition
//! recovered after kill -9. Each must show in the log, naming the
//! partition, and in /metrics; the broker keeps serving.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use spindle_tests::wire::{
    api_versions_round_trip, batch, connect, create_topic, metric_value, parse_produce_v3,
    produce_v3, read_frame, scrape_metrics,
};
use spindle_tests::{scratch_dir, Broker};

const KAFKA_STORAGE_ERROR: i16 = 56;

fn metric(b: &Broker, sample: &str) -> Result<f64> {
    let text = scrape_metrics(&b.metrics_addr().context("metrics address")?)?;
    metric_value(&text, sample)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A small ext4 filesystem mounted from an image; unmounted on drop
/// (after whatever holds files in it is gone).
struct SmallFs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(mib: u64) -> Result<SmallFs> {
        let dir = scratch_dir("smallfs");
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt)?;
        std::fs::File::create(&img)?.set_len(mib << 20)?;
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img))?;
        run(Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(&img)
            .arg(&mnt))
        .context("loop mount (needs root)")?;
        Ok(SmallFs { mnt, _dir: dir })
    }

    fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

#[test]
fn a_full_disk_poisons_the_partition_and_says_so() -> Result<()> {
    let fs = SmallFs::new(48)?;
    let mut b = Broker::start_in(
        "poison",
        &fs.path().join("data"),
        &[
            "--shards",
            "1",
            "--segment-bytes",
            "8388608",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )?;
    create_topic(b.addr(), "full", 1)?;
    let mut s = connect(b.addr())?;
    let value = vec![b'f'; 1 << 20];
    let mut acked = 0;
    let mut refused = None;
    for i in 0..100 {
        s.write_all(&produce_v3(i, -1, "full", 0, &batch(&[&value], 0)))?;
        let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, i)?;
        if err != 0 {
            refused = Some(err);
            break;
        }
        acked += 1;
    }
    ensure!(
        refused == Some(KAFKA_STORAGE_ERROR),
        "after {acked} acks on a 48 MiB disk: {refused:?}"
    );
    // Never an ack after the failure, and the broker serves the rest.
    s.write_all(&produce_v3(500, -1, "full", 0, &batch(&[b"more"], 0)))?;
    let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, 500)?;
    ensure!(err == KAFKA_STORAGE_ERROR, "append after poisoning: {err}");
    ensure!(api_versions_round_trip(&mut connect(b.addr())?, 1)? == Some(0));
    ensure!(
        metric(
            &b,
            "spindle_partition_poisoned{topic=\"full\",partition=\"0\"}"
        )? == 1.0,
        "the metric shows the poisoned partition"
    );
    let pred = |l: &str| l.contains("ERROR") && l.contains("poisoned") && l.contains("full-0");
    let log = b.wait_for_log_line(pred);
    ensure!(
        log.lines().any(pred),
        "no error line names the poisoned partition:\n{log}"
    );
    b.kill9()?;
    Ok(())
}

#[test]
fn a_recovery_after_kill_9_is_logged_per_partition() -> Result<()> {
    let mut b = Broker::start("recovery-log", &["--shards", "1"])?;
    create_topic(b.addr(), "rec", 2)?;
    let mut s = connect(b.addr())?;
    for i in 0..10 {
        s.write_all(&produce_v3(i, -1, "rec", i % 2, &batch(&[b"kept"], 0)))?;
        let (err, _) = parse_produce_v3(&read_frame(&mut s)?.context("closed")?, i)?;
        ensure!(err == 0, "produce error {err}");
    }
    drop(s);
    b.kill9()?;
    // A new broker on the same data (and a new port: the old one may be
    // taken by a parallel test meanwhile).
    let again = Broker::start_in("recovery-log", b.data_dir(), &["--shards", "1"])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = again.log();
        // Per partition: that a scan ran, and what it found (all 5
        // acknowledged records; only unwritten preallocation dropped,
        // which is no cause for a warning).
        let recovered = |p: &str| {
            after
                .lines()
                .any(|l| l.contains("no clean shutdown") && l.contains(p))
                && after.lines().any(|l| {
                    l.contains("recovery done")
                        && l.contains(p)
                        && l.contains("truncated_bytes=0")
                        && l.contains("next_offset=5")
                })
        };
        ensure!(
            !after.contains("WARN"),
            "a warning after a clean kill -9:\n{after}"
        );
        if recovered("rec-0")
            && recovered("rec-1")
            && after.contains("partition logs opened")
            // rec-0, rec-1 and the one __consumer_offsets partition.
            && after.contains("opened=3 failed=0")
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "recovery not logged per partition:\n{after}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
