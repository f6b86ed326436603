//! `spindle consume --group G`: a member of a classic consumer group, as
//! kafka-console-consumer is: JoinGroup with the "consumer" protocol and
//! the range assignor, SyncGroup (the leader assigns every member's
//! subscription, so a Java or librdkafka member in the same group gets
//! its share too), committed offsets as start positions (`--offset` for
//! partitions without one), heartbeats between fetches, a commit after
//! each batch printed, and LeaveGroup at the end. A rebalance commits and
//! joins again. Assignments and subscriptions are Kafka's
//! ConsumerProtocol messages, a version prefix and the generated body.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use spindle_codec::kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use spindle_codec::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use spindle_codec::kafka_protocol::messages::leave_group_request::MemberIdentity;
use spindle_codec::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use spindle_codec::kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;

use crate::cli::ConsumeArgs;
use crate::client::{str_bytes, topic_name, Client, ClusterView};
use crate::cmd::consume::{print_all, start_positions, Fetcher, Printer};
use crate::error::{AdminError, Result};
use crate::group_offsets::{
    commit, committed, decode_versioned, encode_versioned, group_id, Offsets,
};
use crate::Ctx;

const SESSION_TIMEOUT_MS: i32 = 10_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
const ASSIGNOR: &str = "range";
/// JoinGroup answers: MEMBER_ID_REQUIRED (join again with the id given),
/// REBALANCE_IN_PROGRESS (join again), UNKNOWN_MEMBER_ID (join as new).
const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
/// Joins tried before giving up: each wait is bounded by the rebalance.
const JOIN_TRIES_MAX: u32 = 10;

struct Membership {
    member_id: String,
    generation: i32,
    assigned: Vec<i32>,
}

pub fn run(
    ctx: &Ctx,
    client: &mut Client,
    view: &ClusterView,
    a: &ConsumeArgs,
    group: &str,
    out: &mut Printer,
) -> Result<()> {
    let coordinator = client.coordinator_addr(group)?;
    let mut member_id = String::new();
    loop {
        let m = join(ctx, client, &coordinator, group, &a.topic, member_id)?;
        member_id = m.member_id.clone();
        let mine: Vec<i32> = match a.partitions.is_empty() {
            true => m.assigned.clone(),
            false => m
                .assigned
                .iter()
                .copied()
                .filter(|p| a.partitions.contains(p))
                .collect(),
        };
        let parts: Vec<(String, i32)> = mine.iter().map(|&p| (a.topic.clone(), p)).collect();
        let done = committed(client.at(&coordinator)?, group, Some(&parts))?;
        let mut positions = start_positions(client, view, a, &mine)?;
        for ((_, p), o) in done {
            positions.insert(p, o);
        }
        let mut fetcher = Fetcher::new(&a.topic, positions);
        if a.exit_at_end {
            fetcher.stop_at_end(client, view)?;
        }
        let rejoin = read(client, view, &coordinator, group, &m, &mut fetcher, out)?;
        if !rejoin {
            leave(client.at(&coordinator)?, group, &m.member_id)?;
            return Ok(());
        }
    }
}

/// Reads and commits until done (`false`) or a rebalance (`true`).
fn read(
    client: &mut Client,
    view: &ClusterView,
    coordinator: &str,
    group: &str,
    m: &Membership,
    fetcher: &mut Fetcher,
    out: &mut Printer,
) -> Result<bool> {
    let mut last_heartbeat = Instant::now();
    let mut committed_at = fetcher.positions.clone();
    loop {
        if out.done() || fetcher.done() {
            commit_positions(client, coordinator, group, m, fetcher, &mut committed_at)?;
            return Ok(false);
        }
        if fetcher.positions.is_empty() {
            // Nothing of ours assigned: stay a member, heartbeat, and wait
            // for a rebalance that brings partitions.
            std::thread::sleep(Duration::from_millis(500));
        } else {
            let records = fetcher.fetch(client, view)?;
            print_all(fetcher, records, out)?;
        }
        match commit_positions(client, coordinator, group, m, fetcher, &mut committed_at) {
            Err(AdminError::Kafka { code, .. }) if rebalancing(code) => return Ok(true),
            other => other?,
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            last_heartbeat = Instant::now();
            let req = HeartbeatRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id(m.generation)
                .with_member_id(str_bytes(&m.member_id));
            let resp = client.at(coordinator)?.call(&req)?;
            if rebalancing(resp.error_code) {
                return Ok(true);
            }
            AdminError::check(resp.error_code, None, || {
                format!("heartbeat to group {group}")
            })?;
        }
    }
}

fn rebalancing(code: i16) -> bool {
    matches!(
        code,
        REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID
    )
}

/// Commits the positions that moved since the last commit.
fn commit_positions(
    client: &mut Client,
    coordinator: &str,
    group: &str,
    m: &Membership,
    fetcher: &Fetcher,
    committed_at: &mut BTreeMap<i32, i64>,
) -> Result<()> {
    let moved: Offsets = fetcher
        .positions
        .iter()
        .filter(|(p, o)| committed_at.get(p) != Some(o))
        .map(|(&p, &o)| ((fetcher.topic().to_string(), p), o))
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    commit(
        client.at(coordinator)?,
        group,
        m.generation,
        &m.member_id,
        &moved,
    )?;
    committed_at.extend(moved.into_iter().map(|((_, p), o)| (p, o)));
    Ok(())
}

/// JoinGroup (again with the id the broker hands out, KIP-394), then
/// SyncGroup; the leader assigns.
fn join(
    ctx: &Ctx,
    client: &mut Client,
    coordinator: &str,
    group: &str,
    topic: &str,
    mut member_id: String,
) -> Result<Membership> {
    let rebalance_ms = i32::try_from(ctx.timeout.as_millis() * 2 / 3).unwrap_or(i32::MAX);
    let subscription = encode_versioned(
        &ConsumerProtocolSubscription::default().with_topics(vec![str_bytes(topic)]),
        0,
    )?;
    for _ in 0..JOIN_TRIES_MAX {
        let req = JoinGroupRequest::default()
            .with_group_id(group_id(group))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(rebalance_ms)
            .with_member_id(str_bytes(&member_id))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(ASSIGNOR))
                .with_metadata(subscription.clone())]);
        let conn = client.at(coordinator)?;
        let resp = conn.call(&req)?;
        match resp.error_code {
            MEMBER_ID_REQUIRED => {
                member_id = resp.member_id.to_string();
                continue;
            }
            REBALANCE_IN_PROGRESS => continue,
            UNKNOWN_MEMBER_ID => {
                member_id.clear();
                continue;
            }
            code => AdminError::check(code, None, || format!("join group {group}"))?,
        }
        member_id = resp.member_id.to_string();
        let assignments = if resp.leader == resp.member_id {
            assign(client, &resp.members)?
        } else {
            Vec::new()
        };
        let conn = client.at(coordinator)?;
        let v = conn.version(ApiKey::SyncGroup)?;
        let mut sync = SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(resp.generation_id)
            .with_member_id(resp.member_id.clone())
            .with_assignments(assignments);
        if v >= 5 {
            sync = sync
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(StrBytes::from_static_str(ASSIGNOR)));
        }
        let synced = conn.call_version(&sync, v)?;
        if rebalancing(synced.error_code) {
            continue;
        }
        AdminError::check(synced.error_code, None, || format!("sync group {group}"))?;
        let assigned = decode_assignment(synced.assignment, topic)?;
        return Ok(Membership {
            member_id,
            generation: resp.generation_id,
            assigned,
        });
    }
    Err(AdminError::Failed(format!(
        "group {group}: no stable membership after {JOIN_TRIES_MAX} joins"
    )))
}

/// The range assignor: per topic, partitions in order split into
/// contiguous ranges over the members (sorted by id) that subscribe to it.
fn assign(
    client: &mut Client,
    members: &[spindle_codec::kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
) -> Result<Vec<SyncGroupRequestAssignment>> {
    let mut subscribers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in members {
        let mut bytes = m.metadata.clone();
        let s: ConsumerProtocolSubscription = decode_versioned(&mut bytes)?;
        for t in s.topics {
            subscribers
                .entry(t.to_string())
                .or_default()
                .push(m.member_id.to_string());
        }
    }
    let topics: Vec<String> = subscribers.keys().cloned().collect();
    let view = client.metadata(Some(&topics), false)?;
    let mut plan: BTreeMap<String, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (topic, mut ms) in subscribers {
        ms.sort();
        let Ok(t) = view.topic(&topic) else { continue };
        let n = t.partitions.len();
        let (per, extra) = (n / ms.len(), n % ms.len());
        let mut next = 0;
        for (i, m) in ms.iter().enumerate() {
            let take = per + usize::from(i < extra);
            let ps = t.partitions[next..next + take].iter().map(|p| p.partition);
            plan.entry(m.clone())
                .or_default()
                .insert(topic.clone(), ps.collect());
            next += take;
        }
    }
    let mut out = Vec::new();
    for m in members {
        let topics = plan.remove(m.member_id.as_str()).unwrap_or_default();
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartition::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(ps)
                })
                .collect(),
        );
        out.push(
            SyncGroupRequestAssignment::default()
                .with_member_id(m.member_id.clone())
                .with_assignment(encode_versioned(&assignment, 0)?),
        );
    }
    Ok(out)
}

/// Our partitions of `topic` in an assignment (empty bytes: none).
fn decode_assignment(mut bytes: Bytes, topic: &str) -> Result<Vec<i32>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let a: ConsumerProtocolAssignment = decode_versioned(&mut bytes)?;
    let mut mine = BTreeSet::new();
    for tp in a.assigned_partitions {
        if tp.topic.0.as_str() == topic {
            mine.extend(tp.partitions);
        }
    }
    Ok(mine.into_iter().collect())
}

fn leave(conn: &mut crate::conn::Conn, group: &str, member_id: &str) -> Result<()> {
    let v = conn.version(ApiKey::LeaveGroup)?;
    let mut req = LeaveGroupRequest::default().with_group_id(group_id(group));
    // v3 leaves in batches of members.
    if v >= 3 {
        req = req.with_members(vec![
            MemberIdentity::default().with_member_id(str_bytes(member_id))
        ]);
    } else {
        req = req.with_member_id(str_bytes(member_id));
    }
    let resp = conn.call_version(&req, v)?;
    AdminError::check(resp.error_code, None, || format!("leave group {group}"))
}
