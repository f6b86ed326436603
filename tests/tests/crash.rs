//! Crash tests of the real binary: an idempotent confluent-kafka producer
//! (acks=all, enable.idempotence: InitProducerId, sequence numbers,
//! retries across restarts) sends numbered messages to 4 partitions spread
//! over both shards while the broker (flush=batch, the default) is killed
//! with SIGKILL at random moments and restarted on the same data dir.
//!
//! After every restart, and once more at the end, `verify_log.py` checks
//! each partition against every acknowledgement the producer had received
//! by then: each acknowledged message is at its acknowledged offset with
//! its exact bytes; offsets run from 0 to the high watermark without gaps
//! and the high watermark is past every ack; no message appears twice
//! (acknowledged or not: retries of batches that landed without an ack
//! must be deduplicated by the broker's recovered producer state); message
//! numbers increase with the offset; every message in the log is one the
//! producer sent. Messages that landed without an ack are legitimate and
//! counted. At the end every message sent must have been acknowledged
//! (the producer retried across every restart) and none failed.
//!
//! Seeded: the seed is printed; `SPINDLE_CRASH_SEED=N` replays the kill
//! schedule (the broker's own timing still varies), `SPINDLE_CRASH_ROUNDS`
//! sets the number of kill/restart rounds (default 20).

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context, Result};
use spindle_codec::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use spindle_codec::kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_tests::acked::{verify, write_acks, AckedProducer, Messages};
use spindle_tests::kafka::KafkaConn;
use spindle_tests::{run_bounded, Broker, CLIENT_TIMEOUT};

/// SplitMix64: reproducible kill times from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Shards owning the topic's partitions, from the broker's metadata file.
fn owners(broker: &Broker, topic: &str) -> Result<Vec<u32>> {
    let meta = std::fs::read_to_string(broker.data_dir().join("spindle-meta.json"))?;
    let at = meta
        .find(&format!("\"name\": \"{topic}\""))
        .context("topic not in spindle-meta.json")?;
    let rest = &meta[at..];
    let start = rest.find("\"owners\"").context("no owners")?;
    let list = &rest[start..];
    let list = &list[list.find('[').context("[")? + 1..list.find(']').context("]")?];
    list.split(',')
        .map(|s| s.trim().parse::<u32>().context("owner"))
        .collect()
}

/// Commits of a consumer group made while the broker is killed: a thread
/// commits ever larger offsets (standalone commits, one partition of the
/// topic at a time) and records, per partition, the largest offset it
/// sent and the largest the broker acknowledged.
struct Committer {
    state: Arc<Mutex<[(i64, i64); 4]>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

const GROUP: &str = "crash-group";

fn commit_request(partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("crash")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])])
}

impl Committer {
    fn start(addr: String) -> Committer {
        let state = Arc::new(Mutex::new([(-1i64, -1i64); 4]));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut next: i64 = 0;
            let mut acked: u64 = 0;
            while !sp.load(Ordering::Relaxed) {
                let Ok(mut c) = KafkaConn::connect(&addr) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                loop {
                    if sp.load(Ordering::Relaxed) {
                        break;
                    }
                    let p = (next % 4) as i32;
                    next += 1;
                    if let Ok(mut s) = st.lock() {
                        s[p as usize].0 = next;
                    }
                    let r: Result<OffsetCommitResponse> =
                        c.call(ApiKey::OffsetCommit, 8, &commit_request(p, next));
                    match r {
                        Ok(r) if r.topics[0].partitions[0].error_code == 0 => {
                            acked += 1;
                            if let Ok(mut s) = st.lock() {
                                s[p as usize].1 = next;
                            }
                        }
                        // Refused (loading, not yet created): try again.
                        Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                        Err(_) => break,
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            acked
        });
        Committer {
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

/// After a restart: each partition's committed offset is at least the last
/// one acknowledged and at most the last one sent (COMMITTED OFFSETS
/// INTACT: an acknowledged commit survives kill -9; nothing is invented).
fn check_committed_offsets(broker: &Broker, committer: &Committer) -> Result<()> {
    let bounds = *committer
        .state
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?;
    let mut c = KafkaConn::connect(broker.addr())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r: OffsetFetchResponse = c.call(
            ApiKey::OffsetFetch,
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
                .with_topics(None),
        )?;
        // COORDINATOR_LOAD_IN_PROGRESS (14) right after a start: ask again.
        if r.error_code != 14 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure!(r.error_code == 0, "OffsetFetch: {r:?}");
    let mut got = [-1i64; 4];
    for t in &r.topics {
        for p in &t.partitions {
            if let Some(g) = got.get_mut(p.partition_index as usize) {
                *g = p.committed_offset;
            }
        }
    }
    for (p, ((sent, acked), have)) in bounds.iter().zip(got).enumerate() {
        // The committer may have sent more since the snapshot: only the
        // acknowledged bound is exact.
        ensure!(
            have >= *acked,
            "partition {p}: committed offset {have}, but {acked} was acknowledged (sent up to {sent})"
        );
    }
    Ok(())
}

#[test]
fn acknowledged_messages_survive_sigkill_at_random_moments() -> Result<()> {
    crash_rounds("crash", &[], &[], 1)
}

/// The same with 128 KiB segments: kills land during rolls, finalizes and
/// checkpoint writes, and recovery sees many sealed segments.
#[test]
fn acknowledged_messages_survive_sigkill_during_segment_rolls() -> Result<()> {
    // A batch larger than a segment is refused (MESSAGE_TOO_LARGE, as in
    // Kafka): keep the producer's batches well below it.
    crash_rounds(
        "crash-rolls",
        &["--segment-bytes", "131072"],
        &["--batch-bytes", "32768"],
        4,
    )
}

/// Segment files of each partition of the topic.
fn segments(broker: &Broker, topic: &str, partitions: u32) -> Result<Vec<usize>> {
    (0..partitions)
        .map(|p| {
            let dir = broker.data_dir().join(format!("{topic}-{p}"));
            Ok(std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count())
        })
        .collect()
}

fn crash_rounds(
    name: &str,
    extra: &[&str],
    producer_extra: &[&str],
    min_segments: usize,
) -> Result<()> {
    let seed = env_u64("SPINDLE_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let rounds = env_u64("SPINDLE_CRASH_ROUNDS").unwrap_or(20);
    println!("{name}: seed {seed} (replay with SPINDLE_CRASH_SEED={seed}), {rounds} rounds");
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    let mut args = vec!["--shards", "2", "--default-partitions", "4"];
    args.extend(extra);
    let mut broker = Broker::start(name, &args)?;
    let msgs = Messages {
        topic: "crash".into(),
        partitions: 4,
        tag: "crash".into(),
        seed,
        size_max: 400,
    };
    // Auto-create the topic (4 partitions) through a metadata request.
    let mut kcat = std::process::Command::new("kcat");
    kcat.args(["-b", broker.addr(), "-L", "-t", "crash"]);
    let out = run_bounded(kcat, b"", CLIENT_TIMEOUT)?;
    ensure!(out.status.success(), "kcat -L: {}", out.stderr);
    let own = owners(&broker, "crash")?;
    ensure!(
        own.len() == 4 && own.contains(&0) && own.contains(&1),
        "partitions must span both shards: {own:?}"
    );
    let scratch = broker.data_dir().parent().context("scratch")?.to_path_buf();
    let stop = scratch.join("stop-producing");
    let acks_file = scratch.join("acks.txt");
    let stop_arg = stop.display().to_string();
    let mut producer_args = vec![
        "--idempotent",
        "--count",
        "10000000",
        "--rate",
        "1500",
        "--duration-s",
        "100",
        "--flush-s",
        "100",
        "--stop-file",
        &stop_arg,
    ];
    producer_args.extend(producer_extra);
    let mut producer = AckedProducer::start(broker.addr(), &msgs, &producer_args)?;
    let mut committer = Committer::start(broker.addr().to_string());
    let mut acked_before_kill = Vec::new();
    let mut startup_kills = 0;
    for round in 0..rounds {
        let uptime = Duration::from_millis(100 + rng.below(700));
        std::thread::sleep(uptime);
        let acks = producer.acks();
        broker.kill9()?;
        acked_before_kill.push(acks);
        if rng.below(3) == 0 {
            // Also kill the next start, often before it is listening:
            // recovery itself is interrupted (truncation, syncs, index
            // rewrites, marker removal).
            let after = Duration::from_millis(rng.below(150));
            if !broker.start_and_kill_after(after)? {
                startup_kills += 1;
            }
        }
        broker.restart()?;
        let lines = producer.lines();
        ensure!(
            !lines
                .iter()
                .any(|l| l.starts_with("fatal") || l.starts_with("err")),
            "round {round}: the producer failed (first reports): {:?}\n{}",
            lines
                .iter()
                .filter(|l| !l.starts_with("ack"))
                .take(10)
                .collect::<Vec<_>>(),
            producer.stderr()
        );
        write_acks(&acks_file, &lines)?;
        let ok = verify(broker.addr(), &msgs, &acks_file)
            .with_context(|| format!("round {round} (seed {seed}), killed after {uptime:?}"))?;
        check_committed_offsets(&broker, &committer)?;
        println!(
            "{name} round {round}: killed after {uptime:?} with {acks} acks; after restart {ok}"
        );
    }
    std::fs::write(&stop, b"")?;
    let commits = committer.finish();
    let done = producer.wait(Duration::from_secs(110))?;
    ensure!(
        done.contains("failed=0") && done.contains("unflushed=0"),
        "not every message was acknowledged: {done}"
    );
    // Kills must have landed while messages were in flight, not only
    // between bursts: acks grew over the rounds.
    let total = producer.acks();
    ensure!(
        acked_before_kill.windows(2).filter(|w| w[1] > w[0]).count() as u64 >= rounds / 2,
        "too few rounds had new acks: {acked_before_kill:?}"
    );
    broker.kill9()?;
    broker.restart()?;
    write_acks(&acks_file, &producer.lines())?;
    let ok = verify(broker.addr(), &msgs, &acks_file)?;
    check_committed_offsets(&broker, &committer)?;
    let sent_max = committer
        .state
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .iter()
        .map(|b| b.0)
        .max()
        .unwrap_or(0);
    ensure!(
        commits > rounds,
        "only {commits} commits acknowledged over {rounds} rounds (sent up to {sent_max})"
    );
    let segs = segments(&broker, "crash", 4)?;
    // Fewer rounds than the default send too little to roll that often.
    ensure!(
        rounds < 20 || segs.iter().all(|&n| n >= min_segments),
        "segments per partition {segs:?}, want at least {min_segments}"
    );
    println!(
        "{name} final: {startup_kills} kills before the restarted broker listened; segments per partition {segs:?}; {total} acks, {done}; {commits} offset commits acknowledged; after a last SIGKILL {ok}; {rounds} rounds in {:?}",
        t0.elapsed()
    );
    Ok(())
}
