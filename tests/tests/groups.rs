//! Consumer groups against the real broker: real clients (confluent-kafka,
//! kafka-python, kafkajs) in groups, committed offsets across restarts
//! and expiry, and the error codes clients act on, checked with exact
//! requests.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use spindle_codec::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use spindle_codec::kafka_protocol::messages::*;
use spindle_codec::kafka_protocol::protocol::StrBytes;
use spindle_tests::kafka::KafkaConn;
use spindle_tests::wire::{create_topic, metric_value, scrape_metrics};
use spindle_tests::{node, python, Broker};

fn ok_line(out: &spindle_tests::Output) -> Result<()> {
    ensure!(
        out.stdout.lines().any(|l| l.starts_with("ok")),
        "{}",
        out.stdout
    );
    Ok(())
}

#[test]
fn two_consumers_split_then_one_takes_over_on_close_and_on_session_timeout() -> Result<()> {
    let broker = Broker::start("grp-split", &["--shards", "2"])?;
    let out = python("ck_groups.py", broker.addr(), &["split"])?;
    ensure!(
        out.stdout.contains("after kill: a owns all 4"),
        "{}",
        out.stdout
    );
    ok_line(&out)
}

#[test]
fn restarted_consumer_resumes_after_its_last_commit() -> Result<()> {
    let broker = Broker::start("grp-resume", &["--shards", "2"])?;
    ok_line(&python("ck_groups.py", broker.addr(), &["resume"])?)
}

#[test]
fn cooperative_sticky_assignment_with_librdkafka() -> Result<()> {
    let broker = Broker::start("grp-coop", &["--shards", "2"])?;
    ok_line(&python("ck_groups.py", broker.addr(), &["cooperative"])?)
}

#[test]
fn kafka_python_group_reads_everything_once() -> Result<()> {
    let broker = Broker::start("grp-kp", &["--shards", "2"])?;
    ok_line(&python("kafka_python_group.py", broker.addr(), &[])?)
}

#[test]
fn kafkajs_group_reads_everything_once() -> Result<()> {
    let broker = Broker::start("grp-kjs", &["--shards", "2"])?;
    ok_line(&node("kafkajs_group.js", broker.addr(), &[])?)
}

#[test]
fn admin_client_lists_describes_and_deletes_groups() -> Result<()> {
    let broker = Broker::start("grp-admin", &["--shards", "2"])?;
    ok_line(&python("ck_admin_groups.py", broker.addr(), &[])?)
}

#[test]
fn committed_offsets_survive_clean_and_crash_restarts() -> Result<()> {
    let mut broker = Broker::start("grp-restart", &["--shards", "2"])?;
    let (t, g) = ("kept", "g-kept");
    ok_line(&python("ck_offsets.py", broker.addr(), &["commit", t, g])?)?;
    // A clean stop, then a crash: both keep every acknowledged commit.
    broker.stop()?;
    broker.restart()?;
    ok_line(&python("ck_offsets.py", broker.addr(), &["check", t, g])?)?;
    broker.kill9()?;
    broker.restart()?;
    ok_line(&python("ck_offsets.py", broker.addr(), &["check", t, g])?)?;
    ensure!(
        broker.log().contains("consumer groups loaded"),
        "{}",
        broker.log()
    );
    Ok(())
}

#[test]
fn offsets_of_empty_groups_expire_after_the_retention() -> Result<()> {
    let broker = Broker::start(
        "grp-expire",
        &[
            "--shards",
            "2",
            "--offsets-retention-ms",
            "1500",
            "--offsets-retention-check-interval-ms",
            "200",
        ],
    )?;
    let (t, g) = ("gone", "g-gone");
    ok_line(&python("ck_offsets.py", broker.addr(), &["commit", t, g])?)?;
    std::thread::sleep(std::time::Duration::from_millis(2500));
    ok_line(&python("ck_offsets.py", broker.addr(), &["expired", t, g])?)
}

// --- exact requests and error codes ---------------------------------------

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// A consumer-protocol subscription to `topics` (version 0).
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

fn join_req(member: &str, instance: Option<&str>, topics: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(subscription(topics))])
}

fn heartbeat(
    c: &mut KafkaConn,
    member: &str,
    instance: Option<&str>,
    generation: i32,
) -> Result<i16> {
    let r: HeartbeatResponse = c.call(
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s)),
    )?;
    Ok(r.error_code)
}

fn commit(c: &mut KafkaConn, member: &str, generation: i32, topic: &str) -> Result<i16> {
    let r: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)])]),
    )?;
    Ok(r.topics[0].partitions[0].error_code)
}

#[test]
fn group_error_codes_follow_kafka() -> Result<()> {
    let broker = Broker::start(
        "grp-codes",
        &["--shards", "2", "--group-initial-rebalance-delay-ms", "0"],
    )?;
    let mut c = KafkaConn::connect(broker.addr())?;
    create_topic(broker.addr(), "t", 2)?;
    let f: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")]),
    )?;
    ensure!(f.coordinators[0].error_code == 0 && f.coordinators[0].port == broker.port() as i32);

    // v5: a new member first gets its id with MEMBER_ID_REQUIRED (79).
    let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_req("", None, &["t"]))?;
    ensure!(j.error_code == 79 && !j.member_id.is_empty(), "{j:?}");
    let a = j.member_id.to_string();
    let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_req(&a, None, &["t"]))?;
    ensure!(
        j.error_code == 0 && j.generation_id == 1 && j.leader.as_str() == a,
        "{j:?}"
    );
    ensure!(j.members.len() == 1, "the leader gets the members");
    let sy: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(1)
            .with_member_id(s(&a))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&a))
                    .with_assignment(Bytes::from_static(b"all")),
            ]),
    )?;
    ensure!(sy.error_code == 0 && &sy.assignment[..] == b"all", "{sy:?}");

    ensure!(heartbeat(&mut c, &a, None, 1)? == 0);
    ensure!(
        heartbeat(&mut c, &a, None, 0)? == 22,
        "stale generation: ILLEGAL_GENERATION"
    );
    ensure!(
        heartbeat(&mut c, "nobody", None, 1)? == 25,
        "UNKNOWN_MEMBER_ID"
    );
    ensure!(commit(&mut c, &a, 1, "t")? == 0);
    ensure!(
        commit(&mut c, &a, 0, "t")? == 22,
        "commit with a stale generation"
    );
    ensure!(
        commit(&mut c, "nobody", 1, "t")? == 25,
        "commit by an unknown member"
    );
    ensure!(
        commit(&mut c, &a, 1, "no-such-topic")? == 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    // A static member joins: a rebalance starts, the old member is told.
    let mut c2 = KafkaConn::connect(broker.addr())?;
    c2.send(ApiKey::JoinGroup, 5, &join_req("", Some("i1"), &["t"]))?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    ensure!(
        heartbeat(&mut c, &a, None, 1)? == 27,
        "REBALANCE_IN_PROGRESS"
    );
    ensure!(
        commit(&mut c, &a, 1, "t")? == 0,
        "commits still go in while preparing"
    );
    let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_req(&a, None, &["t"]))?;
    ensure!(j.error_code == 0 && j.generation_id == 2, "{j:?}");
    let j2: JoinGroupResponse = c2.recv(ApiKey::JoinGroup, 5)?;
    ensure!(j2.error_code == 0 && j2.generation_id == 2, "{j2:?}");
    let static_id = j2.member_id.to_string();
    // The same instance id from a new process fences the old member id.
    let mut c3 = KafkaConn::connect(broker.addr())?;
    c3.send(ApiKey::JoinGroup, 5, &join_req("", Some("i1"), &["t"]))?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    ensure!(
        heartbeat(&mut c2, &static_id, Some("i1"), 2)? == 82,
        "FENCED_INSTANCE_ID"
    );

    // OffsetDelete of a topic the group consumes is refused; DeleteGroups
    // of a group with members too.
    let od: OffsetDeleteResponse = c.call(
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default(),
                    ]),
            ]),
    )?;
    ensure!(
        od.error_code == 0 && od.topics[0].partitions[0].error_code == 86,
        "{od:?}"
    );
    let dg: DeleteGroupsResponse = c.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s("g")), GroupId(s("none"))]),
    )?;
    ensure!(dg.results[0].error_code == 68, "NON_EMPTY_GROUP: {dg:?}");
    ensure!(dg.results[1].error_code == 69, "GROUP_ID_NOT_FOUND: {dg:?}");

    // The internal topic is the broker's own.
    let dt: DeleteTopicsResponse = c.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("__consumer_offsets"))]),
    )?;
    ensure!(dt.responses[0].error_code == 17, "INVALID_TOPIC: {dt:?}");
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )?;
    let internal = md.topics.iter().find(|t| {
        t.name
            .as_ref()
            .is_some_and(|n| n.0.as_str() == "__consumer_offsets")
    });
    ensure!(
        internal.is_some_and(|t| t.is_internal && t.partitions.len() == 2),
        "{md:?}"
    );
    Ok(())
}

#[test]
fn deleting_a_topic_drops_its_committed_offsets() -> Result<()> {
    let mut broker = Broker::start("grp-drop", &["--shards", "2"])?;
    let (t, g) = ("dropme", "g-drop");
    ok_line(&python("ck_offsets.py", broker.addr(), &["commit", t, g])?)?;
    let mut c = KafkaConn::connect(broker.addr())?;
    let fetch = |c: &mut KafkaConn| -> Result<Vec<i64>> {
        let r: OffsetFetchResponse = c.call(
            ApiKey::OffsetFetch,
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(g)))
                .with_topics(None),
        )?;
        ensure!(r.error_code == 0, "{r:?}");
        Ok(r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
            .collect())
    };
    ensure!(
        fetch(&mut c)?.len() == 3,
        "three partitions committed before the delete"
    );
    let d: DeleteTopicsResponse = c.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s(t))]),
    )?;
    ensure!(d.responses[0].error_code == 0, "{d:?}");
    ensure!(
        fetch(&mut c)?.is_empty(),
        "offsets of the deleted topic remain"
    );
    broker.kill9()?;
    broker.restart()?;
    let mut c = KafkaConn::connect(broker.addr())?;
    ensure!(
        fetch(&mut c)?.is_empty(),
        "offsets of the deleted topic came back after a restart"
    );
    Ok(())
}

#[test]
fn offsets_log_is_rewritten_and_stays_small() -> Result<()> {
    let mut broker = Broker::start(
        "grp-rewrite",
        &["--shards", "1", "--offsets-rewrite-bytes", "65536"],
    )?;
    let mut c = KafkaConn::connect(broker.addr())?;
    create_topic(broker.addr(), "t", 2)?;
    // 4,000 standalone commits (about 500 KB of records), pipelined.
    let commits = 4000;
    let req = |i: i64| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("g-rw")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index((i % 2) as i32)
                    .with_committed_offset(i)])])
    };
    for chunk in (0..commits).collect::<Vec<i64>>().chunks(32) {
        for &i in chunk {
            c.send(ApiKey::OffsetCommit, 8, &req(i))?;
        }
        for _ in chunk {
            let r: OffsetCommitResponse = c.recv(ApiKey::OffsetCommit, 8)?;
            ensure!(r.topics[0].partitions[0].error_code == 0, "{r:?}");
        }
    }
    let segments = std::fs::read_dir(broker.data_dir().join("__consumer_offsets-0"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .count();
    ensure!(
        broker.log().contains("rewrote the live state"),
        "{}",
        broker.log()
    );
    // 16 KiB segments: 500 KB of commits would be 30; rewrites keep a few.
    ensure!(segments <= 8, "{segments} segments left in the offsets log");
    broker.kill9()?;
    broker.restart()?;
    let mut c = KafkaConn::connect(broker.addr())?;
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g-rw")))
            .with_topics(None),
    )?;
    let mut got: Vec<(i32, i64)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    got.sort_unstable();
    ensure!(
        got == vec![(0, commits - 2), (1, commits - 1)],
        "after rewrites and a crash: {got:?}"
    );
    Ok(())
}

#[test]
fn metrics_show_committed_offsets_and_group_lag() -> Result<()> {
    let broker = Broker::start(
        "grp-lag",
        &["--shards", "2", "--metrics-listen", "127.0.0.1:0"],
    )?;
    let (t, g) = ("lagged", "g-lag");
    // 10 records per partition; commits at 7, 4 and 10 (see ck_offsets.py).
    ok_line(&python("ck_offsets.py", broker.addr(), &["commit", t, g])?)?;
    let addr = broker.metrics_addr().context("metrics address")?;
    let text = scrape_metrics(&addr)?;
    let value = |sample: &str| metric_value(&text, sample);
    for (p, committed, lag) in [(0, 7.0, 3.0), (1, 4.0, 6.0), (2, 10.0, 0.0)] {
        let labels = format!("{{group=\"{g}\",topic=\"{t}\",partition=\"{p}\"}}");
        ensure!(value(&format!("spindle_consumer_group_committed_offset{labels}"))? == committed);
        ensure!(value(&format!("spindle_consumer_group_lag{labels}"))? == lag);
    }
    ensure!(value(&format!("spindle_consumer_group_members{{group=\"{g}\"}}"))? == 0.0);
    ensure!(
        value("spindle_consumer_groups{state=\"Empty\"}")? == 2.0,
        "g-lag and g-lag-solo"
    );
    Ok(())
}
