//! Real Kafka clients against the real `spindle` binary: kcat (Debian's,
//! linked to librdkafka 2.0, which misreads default-valued tagged fields),
//! confluent-kafka for Python, and kafka-python. Each test asserts on the
//! data: content, order per partition, no loss, no duplicates.

use std::process::Command;

use anyhow::{ensure, Result};
use spindle_tests::{python, run_bounded, Broker, CLIENT_TIMEOUT};

fn kcat(broker: &Broker, args: &[&str], stdin: &[u8]) -> Result<String> {
    let mut cmd = Command::new("kcat");
    cmd.arg("-b").arg(broker.addr()).args(args);
    let out = run_bounded(cmd, stdin, CLIENT_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "kcat {args:?} failed ({}):\n{}\n{}",
        out.status,
        out.stderr,
        broker.log()
    );
    Ok(out.stdout)
}

#[test]
fn kcat_metadata_produce_consume() -> Result<()> {
    let broker = Broker::start("kcat", &["--shards", "2", "--default-partitions", "2"])?;
    let listed = kcat(&broker, &["-L"], b"")?;
    ensure!(
        listed.contains(&format!("at {}", broker.addr())) || listed.contains(broker.addr()),
        "kcat -L does not show the broker at {}:\n{listed}",
        broker.addr()
    );

    // Produce keyed lines to partitions 0 and 1 (auto-created topic).
    let n = 500;
    for p in 0..2 {
        let input: String = (0..n).map(|i| format!("k{i}:p{p}-v{i}\n")).collect();
        let part = p.to_string();
        kcat(
            &broker,
            &[
                "-P",
                "-t",
                "kc",
                "-p",
                &part,
                "-K",
                ":",
                "-X",
                "topic.request.required.acks=-1",
            ],
            input.as_bytes(),
        )?;
    }
    let listed = kcat(&broker, &["-L", "-t", "kc"], b"")?;
    ensure!(listed.contains("topic \"kc\""), "kcat -L -t kc:\n{listed}");

    for p in 0..2 {
        let part = p.to_string();
        let out = kcat(
            &broker,
            &[
                "-C",
                "-t",
                "kc",
                "-p",
                &part,
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%o %k %s\n",
            ],
            b"",
        )?;
        let want: Vec<String> = (0..n).map(|i| format!("{i} k{i} p{p}-v{i}")).collect();
        let got: Vec<&str> = out.lines().collect();
        ensure!(
            got == want,
            "partition {p}: {} lines back, first differing: {:?}",
            got.len(),
            got.iter().zip(&want).find(|(g, w)| *g != w)
        );
    }
    Ok(())
}

#[test]
fn confluent_kafka_produce_consume() -> Result<()> {
    let broker = Broker::start("ck", &["--shards", "2"])?;
    let out = python("ck_produce_consume.py", broker.addr(), &[])?;
    ensure!(out.stdout.contains("ok:"), "{}", out.stdout);
    Ok(())
}

#[test]
fn confluent_kafka_compression_codecs() -> Result<()> {
    let broker = Broker::start("ckz", &["--shards", "2"])?;
    let out = python("ck_compression.py", broker.addr(), &[])?;
    // librdkafka enables LZ4 only for brokers that serve FindCoordinator
    // v0 (its feature map dates LZ4 by that API).
    for (codec, id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        ensure!(
            out.stdout.contains(&format!("ok: {codec}")),
            "{}",
            out.stdout
        );
        // Stored as the client sent it: the batches on disk still carry
        // the client's codec in their attributes (librdkafka sends a batch
        // uncompressed when compressing does not make it smaller, so not
        // every batch need have it).
        let codecs = stored_batch_codecs(broker.data_dir(), &format!("cz-{codec}-"))?;
        ensure!(
            codecs.contains(&id) && codecs.iter().all(|&c| c == id || c == 0),
            "{codec}: stored batches have codecs {codecs:?} (want {id})"
        );
    }
    Ok(())
}

/// The compression codec (attributes & 7) of every record batch of
/// partition 0 of the one topic whose name starts with `prefix`, read from
/// its first segment file.
fn stored_batch_codecs(data_dir: &std::path::Path, prefix: &str) -> Result<Vec<i16>> {
    let dir = std::fs::read_dir(data_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with("-0"))
        })
        .ok_or_else(|| anyhow::anyhow!("no partition directory {prefix}*-0"))?;
    let log = std::fs::read(dir.join(format!("{:020}.log", 0)))?;
    let mut codecs = Vec::new();
    let mut pos = 0usize;
    // baseOffset 8, batchLength 4, leaderEpoch 4, magic 1, crc 4, then
    // attributes (i16). The file is preallocated: a zero length ends it.
    while pos + 23 <= log.len() {
        let len = u32::from_be_bytes(log[pos + 8..pos + 12].try_into()?) as usize;
        if len == 0 {
            break;
        }
        ensure!(
            log[pos + 16] == 2,
            "{}: no magic-2 batch at {pos}",
            dir.display()
        );
        codecs.push(i16::from_be_bytes([log[pos + 21], log[pos + 22]]) & 0x7);
        pos += 12 + len;
    }
    Ok(codecs)
}

#[test]
fn kafka_python_admin_produce_consume() -> Result<()> {
    let broker = Broker::start("kp", &["--shards", "2"])?;
    let out = python("kafka_python_basic.py", broker.addr(), &[])?;
    ensure!(out.stdout.contains("ok:"), "{}", out.stdout);
    Ok(())
}
