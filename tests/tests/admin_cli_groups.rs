//! The admin CLI's group commands against the real broker: describe and
//! delete, reset-offsets as a dry run and with --execute, a group with a
//! member refused, and groups shared with a librdkafka consumer.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use spindle_tests::admin_cli::{fails, json, ok};
use spindle_tests::{spindle_bin, Broker};

#[test]
fn group_commands_and_reset_offsets_dry_run_then_execute() -> Result<()> {
    let broker = Broker::start(
        "adm-group",
        &["--shards", "2", "--group-initial-rebalance-delay-ms", "0"],
    )?;
    ok(&broker, &["topic", "create", "g", "-p", "2"], b"")?;
    let input: String = (0..10).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&broker, &["produce", "g", "-k", ":"], input.as_bytes())?;
    // Read all 10 in a group: the group commits them.
    let read = ok(
        &broker,
        &["consume", "g", "--group", "grp", "-n", "10"],
        b"",
    )?;
    ensure!(read.lines().count() == 10, "{read}");
    let lag = |b: &Broker| -> Result<Vec<(i64, i64)>> {
        let d = json(b, &["group", "describe", "grp"], b"")?;
        d[0]["partitions"]
            .as_array()
            .context("partitions")?
            .iter()
            .map(|p| {
                Ok((
                    p["current_offset"].as_i64().context("committed")?,
                    p["lag"].as_i64().context("lag")?,
                ))
            })
            .collect()
    };
    let before = lag(&broker)?;
    ensure!(
        before.iter().map(|(c, _)| c).sum::<i64>() == 10 && before.iter().all(|(_, l)| *l == 0),
        "{before:?}"
    );
    let listed = json(&broker, &["group", "list"], b"")?;
    ensure!(
        listed[0]["group"] == "grp" && listed[0]["state"] == "Empty",
        "{listed}"
    );

    // Dry run: the plan, nothing committed.
    let plan = json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--topic",
            "g",
            "--to-earliest",
        ],
        b"",
    )?;
    ensure!(
        plan["executed"] == false && plan["partitions"][0]["new_offset"] == 0,
        "{plan}"
    );
    ensure!(lag(&broker)? == before, "a dry run commits nothing");
    // --execute commits it.
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--topic",
            "g",
            "--to-earliest",
            "--execute",
        ],
        b"",
    )?;
    ensure!(
        lag(&broker)?.iter().all(|(c, _)| *c == 0),
        "reset to earliest"
    );
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--all-topics",
            "--shift-by",
            "2",
            "--execute",
        ],
        b"",
    )?;
    ensure!(lag(&broker)?.iter().all(|(c, _)| *c == 2), "shifted by 2");
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--topic",
            "g:0",
            "--to-offset",
            "999",
            "--execute",
        ],
        b"",
    )?;
    let after = lag(&broker)?;
    ensure!(
        after[0].1 == 0 && after[1].0 == 2,
        "clamped to the end of partition 0 only: {after:?}"
    );
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--topic",
            "g",
            "--to-datetime",
            "2000-01-01T00:00:00",
            "--execute",
        ],
        b"",
    )?;
    ensure!(
        lag(&broker)?.iter().all(|(c, _)| *c == 0),
        "every record is after 2000"
    );
    // Reading in the group again starts at the committed offsets.
    let again = ok(&broker, &["consume", "g", "--group", "grp", "-e"], b"")?;
    ensure!(again.lines().count() == 10, "{again}");

    // Bad input.
    fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--topic",
            "g",
            "--to-offset",
            "x",
        ],
        2,
        "invalid value",
    )?;
    fails(
        &broker,
        &["group", "reset-offsets", "grp", "--topic", "g"],
        2,
        "required",
    )?;
    fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--topic",
            "g",
            "--to-datetime",
            "noon",
        ],
        2,
        "invalid datetime",
    )?;
    fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "grp",
            "--topic",
            "nope",
            "--to-earliest",
        ],
        1,
        "UNKNOWN_TOPIC_OR_PARTITION",
    )?;
    fails(
        &broker,
        &["group", "describe", "nope"],
        1,
        "group nope: GROUP_ID_NOT_FOUND",
    )?;

    // An empty group is deleted, offsets and all.
    ok(
        &broker,
        &["consume", "g", "--group", "gone", "-n", "1"],
        b"",
    )?;
    ok(&broker, &["group", "delete", "gone"], b"")?;
    fails(
        &broker,
        &["group", "describe", "gone"],
        1,
        "GROUP_ID_NOT_FOUND",
    )?;

    // A group with a member cannot be reset, not even in a dry run, nor deleted.
    let mut member = std::process::Command::new(spindle_bin());
    member
        .args([
            "consume",
            "g",
            "--group",
            "grp",
            "--bootstrap",
            broker.addr(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut member = member.spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stable = loop {
        let d = json(&broker, &["group", "describe", "grp"], b"")?;
        if d[0]["state"] == "Stable" || std::time::Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let result = (|| -> Result<()> {
        ensure!(
            stable[0]["members"].as_array().map(Vec::len) == Some(1),
            "{stable}"
        );
        ensure!(
            stable[0]["partitions"][0]["member_id"].is_string(),
            "{stable}"
        );
        fails(
            &broker,
            &[
                "group",
                "reset-offsets",
                "grp",
                "--topic",
                "g",
                "--to-earliest",
            ],
            1,
            "only while the group has no members",
        )?;
        fails(&broker, &["group", "delete", "grp"], 1, "1 of 1 failed")?;
        Ok(())
    })();
    member.kill()?;
    member.wait()?;
    result?;
    Ok(())
}

#[test]
fn groups_of_other_clients_are_described_and_shared() -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let broker = Broker::start(
        "adm-mixed",
        &["--shards", "2", "--group-initial-rebalance-delay-ms", "0"],
    )?;
    ok(&broker, &["topic", "create", "m", "-p", "2"], b"")?;
    let input: String = (0..8).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&broker, &["produce", "m", "-k", ":"], input.as_bytes())?;
    // A librdkafka member reads all 8, commits and stays in the group.
    let script = spindle_tests::workspace_root().join("tests/python/ck_group_member.py");
    let mut py = Command::new(spindle_tests::python_bin())
        .args([
            script.as_os_str(),
            "m".as_ref(),
            "mixed".as_ref(),
            "8".as_ref(),
        ])
        .env("BOOTSTRAP", broker.addr())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = py.stdout.take().context("piped")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let result = (|| -> Result<()> {
        let ready = rx.recv_timeout(Duration::from_secs(90))?;
        ensure!(ready == "ready", "{ready}");
        // Its assignment, read from the consumer protocol.
        let d = json(&broker, &["group", "describe", "mixed"], b"")?;
        let g = &d[0];
        ensure!(
            g["state"] == "Stable" && g["members"][0]["client_id"] == "ck-member",
            "{d}"
        );
        for p in g["partitions"].as_array().context("partitions")? {
            ensure!(
                p["member_id"] == g["members"][0]["member_id"] && p["lag"] == 0,
                "{d}"
            );
        }
        // The CLI joins the same group beside it, and finds nothing left.
        let read = ok(&broker, &["consume", "m", "--group", "mixed", "-e"], b"")?;
        ensure!(read.is_empty(), "everything was committed: {read}");
        Ok(())
    })();
    drop(py.stdin.take());
    let closed = rx.recv_timeout(Duration::from_secs(60));
    let _ = py.kill();
    py.wait()?;
    result?;
    ensure!(
        closed.as_deref() == Ok("ok"),
        "the librdkafka member ended badly: {closed:?}"
    );
    Ok(())
}
