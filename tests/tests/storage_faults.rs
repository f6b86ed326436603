//! Storage faults at the broker level: a real full disk (a loop-mounted
//! ext4 image as the data dir) and injected EIO (the engine's test-only
//! `SPINDLE_FAULTS` hook in the real binary). In both, the faulty
//! partition's appends get KAFKA_STORAGE_ERROR (retriable: librdkafka and
//! the Java client retry it), the failure is logged with the partition and
//! the OS error, other partitions keep being served, the broker reopens the
//! partition by itself and writes resume without a restart, and every
//! acknowledged message reads back at its offset with its exact bytes
//! (`verify_log.py`), also after a final SIGKILL and restart.
//!
//! That nothing unsynced is acknowledged when an fsync fails is proven on
//! the simulated disk, which can lose unsynced writes on purpose
//! (`engine/tests/reopen_after_fault.rs`, `crash_consistency.rs`); here a
//! kill -9 cannot lose what the device already holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use spindle_tests::acked::{verify, write_acks, AckedProducer, Messages};
use spindle_tests::{scratch_dir, Broker};

const KAFKA_STORAGE_ERROR: i32 = 56;

fn msgs(topic: &str, partitions: u32, size_max: u32) -> Messages {
    Messages {
        topic: topic.into(),
        partitions,
        tag: topic.into(),
        seed: 3,
        size_max,
    }
}

/// Runs a producer to completion and returns its report lines.
fn produce(broker: &Broker, m: &Messages, args: &[&str]) -> Result<(String, AckedProducer)> {
    let mut p = AckedProducer::start(broker.addr(), m, args)?;
    let done = p.wait(Duration::from_secs(100))?;
    Ok((done, p))
}

fn log_lines<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

fn verify_all(broker: &Broker, m: &Messages, lines: &[String], file: &Path) -> Result<String> {
    write_acks(file, lines)?;
    verify(broker.addr(), m, file)
}

#[test]
fn injected_eio_poisons_one_partition_which_reopens_by_itself() -> Result<()> {
    // Partition 0 of "faulty": its 31st write fails, and later two
    // fdatasyncs in a row; partitions 1 (other shard) and 2 (same shard)
    // are untouched.
    let faults = "write:/faulty-0/:30:1:eio;sync:/faulty-0/:150:2:eio";
    let mut broker = Broker::start_with(
        "eio",
        None,
        &["--shards", "2", "--default-partitions", "3"],
        &[("SPINDLE_FAULTS", faults)],
    )?;
    let m = msgs("faulty", 3, 300);
    // An idempotent producer runs across the whole fault window: it must
    // get every message acknowledged, retrying KAFKA_STORAGE_ERROR.
    let mut x = AckedProducer::start(
        broker.addr(),
        &m,
        &[
            "--idempotent",
            "--first",
            "1000000",
            "--count",
            "2400",
            "--rate",
            "500",
        ],
    )?;
    // Without retries every broker error reaches the delivery report.
    let (done_a, a) = produce(&broker, &m, &["--count", "4500", "--rate", "1500"])?;
    let done_x = x.wait(Duration::from_secs(100))?;
    ensure!(
        done_x.contains("failed=0 unflushed=0"),
        "idempotent producer through the faults: {done_x}"
    );
    let errors = a.errors();
    ensure!(!errors.is_empty(), "no produce failed: {done_a}");
    for (p, i, code) in &errors {
        ensure!(
            *p == 0 && *code == KAFKA_STORAGE_ERROR,
            "message {i} on partition {p} failed with {code}; only partition 0 may fail, with KAFKA_STORAGE_ERROR"
        );
    }
    // Writes resume: an idempotent producer gets everything acknowledged.
    let (done_b, b) = produce(
        &broker,
        &m,
        &[
            "--idempotent",
            "--first",
            "100000",
            "--count",
            "900",
            "--rate",
            "600",
        ],
    )?;
    ensure!(
        done_b.contains("failed=0 unflushed=0"),
        "after the faults: {done_b}"
    );
    let log = broker.log();
    let failed = log_lines(
        &log,
        &[
            "appends get KAFKA_STORAGE_ERROR",
            "topic=\"faulty\"",
            "partition=0",
            "Input/output error",
        ],
    );
    ensure!(
        !failed.is_empty(),
        "no warning names the partition and the error:\n{log}"
    );
    println!("eio: logged: {}", failed[0]);
    ensure!(
        !log_lines(&log, &["reopened after an I/O error", "partition=0"]).is_empty(),
        "no reopen logged:\n{log}"
    );
    // The second failing fdatasync is recovery's own, on the first reopen:
    // the partition stays offline until the next attempt succeeds.
    let offline = log_lines(&log, &["reopening the partition log failed", "partition=0"]);
    ensure!(!offline.is_empty(), "no failed reopen logged:\n{log}");
    println!("eio: logged: {}", offline[0]);
    for p in [1, 2] {
        ensure!(
            log_lines(
                &log,
                &["appends get KAFKA_STORAGE_ERROR", &format!("partition={p}")]
            )
            .is_empty(),
            "partition {p} was poisoned too:\n{log}"
        );
    }
    let mut lines = a.lines();
    lines.extend(x.lines());
    lines.extend(b.lines());
    let file = broker.data_dir().with_file_name("acks.txt");
    let ok = verify_all(&broker, &m, &lines, &file)?;
    broker.kill9()?;
    broker.restart()?;
    let ok2 = verify_all(&broker, &m, &lines, &file)?;
    println!(
        "eio: {} storage errors on p0; without retries {done_a}; idempotent across the faults {done_x}; after them {done_b}; {ok}; after SIGKILL {ok2}",
        errors.len()
    );
    Ok(())
}

/// A loop-mounted ext4 image, unmounted on drop.
struct LoopMount {
    dir: PathBuf,
}

impl LoopMount {
    /// `None` (with the reason printed) when this machine cannot mount.
    fn new(base: &Path, mib: u64) -> Result<Option<LoopMount>> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIPPED: not root, cannot loop-mount an ext4 image");
            return Ok(None);
        }
        let img = base.join("disk.img");
        let dir = base.join("mnt");
        std::fs::create_dir_all(&dir)?;
        std::fs::File::create(&img)?.set_len(mib << 20)?;
        let st = Command::new("mkfs.ext4").arg("-q").arg(&img).status()?;
        ensure!(st.success(), "mkfs.ext4 failed");
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&dir)
            .output()?;
        if !out.status.success() {
            println!(
                "SKIPPED: mount -o loop is not permitted here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return Ok(None);
        }
        Ok(Some(LoopMount { dir }))
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn free_bytes(dir: &Path) -> Result<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    // SAFETY: statvfs writes into the zeroed struct we own; c is a valid
    // NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    ensure!(r == 0, "statvfs: {}", std::io::Error::last_os_error());
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Takes all but `leave` bytes of the filesystem with a real allocation.
fn fill_disk(path: &Path, leave: u64) -> Result<()> {
    use std::os::fd::AsRawFd;
    let free = free_bytes(path.parent().context("parent")?)?;
    let f = std::fs::File::create(path)?;
    let len = free.saturating_sub(leave) as libc::off_t;
    // SAFETY: fallocate on an fd we own.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
    ensure!(r == 0, "fallocate: {}", std::io::Error::last_os_error());
    f.sync_all()?;
    Ok(())
}

#[test]
fn full_disk_fails_appends_retriably_and_heals_when_space_returns() -> Result<()> {
    let scratch = scratch_dir("enospc");
    let Some(mnt) = LoopMount::new(scratch.path(), 64)? else {
        return Ok(());
    };
    let data = mnt.dir.join("data");
    let mut broker = Broker::start_with(
        "enospc",
        Some(data.clone()),
        &["--shards", "2", "--segment-bytes", "1048576"],
        &[],
    )?;
    let keep = msgs("keep", 1, 200);
    let fill = msgs("fill", 1, 60_000);
    let (done, k1) = produce(&broker, &keep, &["--count", "300"])?;
    ensure!(done.contains("failed=0"), "keep: {done}");
    let (done, f1) = produce(&broker, &fill, &["--count", "5"])?;
    ensure!(done.contains("failed=0"), "fill: {done}");
    let filler = mnt.dir.join("filler");
    fill_disk(&filler, 4 << 20)?;
    let t = Instant::now();
    let (done, f2) = produce(
        &broker,
        &fill,
        &[
            "--first",
            "1000",
            "--count",
            "3000",
            "--until-error",
            "--duration-s",
            "60",
        ],
    )?;
    let errors = f2.errors();
    ensure!(!errors.is_empty(), "the disk never filled: {done}");
    ensure!(
        errors.iter().all(|(_, _, c)| *c == KAFKA_STORAGE_ERROR),
        "errors other than KAFKA_STORAGE_ERROR: {errors:?}"
    );
    let log = broker.log();
    let warned = log_lines(
        &log,
        &[
            "appends get KAFKA_STORAGE_ERROR",
            "topic=\"fill\"",
            "partition=0",
            "No space left on device",
        ],
    );
    ensure!(
        !warned.is_empty(),
        "no warning names the partition and ENOSPC:\n{log}"
    );
    println!("enospc: logged: {}", warned[0]);
    println!("enospc: disk full after {:?}, {done}", t.elapsed());
    // The broker keeps serving reads and the other topic.
    let file = scratch.path().join("acks.txt");
    // "keep" writes into blocks its segment preallocated and zero-filled
    // before the disk filled: they need no new space.
    let (done, k2) = produce(&broker, &keep, &["--first", "1000", "--count", "200"])?;
    ensure!(done.contains("failed=0"), "keep, disk full: {done}");
    let mut keep_lines = k1.lines();
    keep_lines.extend(k2.lines());
    let ok_keep = verify_all(&broker, &keep, &keep_lines, &file)?;
    let mut fill_lines = f1.lines();
    fill_lines.extend(f2.lines());
    let ok_fill = verify_all(&broker, &fill, &fill_lines, &file)?;
    // Space returns: writes resume without a restart.
    std::fs::remove_file(&filler)?;
    let t = Instant::now();
    let (done, f3) = produce(
        &broker,
        &fill,
        &["--idempotent", "--first", "100000", "--count", "200"],
    )?;
    ensure!(
        done.contains("failed=0 unflushed=0"),
        "after freeing space: {done}"
    );
    println!(
        "enospc: writes resumed {:?} after space was freed",
        t.elapsed()
    );
    fill_lines.extend(f3.lines());
    ensure!(
        !log_lines(
            &broker.log(),
            &["reopened after an I/O error", "topic=\"fill\""]
        )
        .is_empty(),
        "no reopen logged"
    );
    broker.kill9()?;
    broker.restart()?;
    let ok_fill2 = verify_all(&broker, &fill, &fill_lines, &file)?;
    let ok_keep2 = verify_all(&broker, &keep, &keep_lines, &file)?;
    println!("enospc: while full keep {ok_keep}, fill {ok_fill}; after SIGKILL fill {ok_fill2}, keep {ok_keep2}");
    drop(broker);
    if !data.starts_with(&mnt.dir) {
        bail!("data dir not on the image");
    }
    Ok(())
}

#[test]
fn sigterm_with_a_partition_offline_exits_cleanly_and_keeps_acked_data() -> Result<()> {
    // Every fdatasync of faulty-0 after the fifth fails, recovery's too:
    // the partition is poisoned, every reopen fails, it stays offline.
    let faults = "sync:/faulty-0/:5:1000000:eio";
    let mut broker = Broker::start_with(
        "eio-term",
        None,
        &["--shards", "2", "--default-partitions", "2"],
        &[("SPINDLE_FAULTS", faults)],
    )?;
    let m = msgs("faulty", 2, 100);
    let (done, a) = produce(&broker, &m, &["--count", "600", "--rate", "400"])?;
    ensure!(
        a.errors()
            .iter()
            .all(|(p, _, c)| *p == 0 && *c == KAFKA_STORAGE_ERROR),
        "{done}: {:?}",
        a.errors()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_lines(&broker.log(), &["reopening the partition log failed"]).is_empty() {
        ensure!(
            Instant::now() < deadline,
            "partition never went offline:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    let st = broker.stop()?;
    ensure!(
        st.success(),
        "exit {st} with a partition offline:\n{}",
        broker.log()
    );
    println!(
        "eio-term: {done}; SIGTERM with faulty-0 offline exited in {:?}",
        t.elapsed()
    );
    // The restarted broker counts faults afresh: its first syncs succeed.
    broker.restart()?;
    let file = broker.data_dir().with_file_name("acks.txt");
    let ok = verify_all(&broker, &m, &a.lines(), &file)?;
    println!("eio-term: after restart {ok}");
    Ok(())
}
