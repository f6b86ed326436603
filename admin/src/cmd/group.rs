//! `spindle group list|describe|delete` (and the dispatch of
//! `reset-offsets`, in [`super::group_reset`]). Groups live on their
//! coordinators: `list` asks every broker, as Kafka's admin client does,
//! `describe` and `delete` ask each group's coordinator. `describe` shows
//! what kafka-consumer-groups --describe shows: per partition the
//! committed offset, the log end, the lag and the member that owns it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spindle_codec::kafka_protocol::messages::describe_groups_response::DescribedGroup;
use spindle_codec::kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest,
};

use crate::cli::{GroupCmd, GroupNames};
use crate::client::{Client, LATEST};
use crate::cmd::group_reset;
use crate::error::{AdminError, Result};
use crate::group_offsets::{committed, decode_versioned, group_id};
use crate::output::{print_described, print_json, report, Outcome, Table};
use crate::Ctx;

const GROUP_ID_NOT_FOUND: i16 = 69;

pub fn run(ctx: &Ctx, cmd: GroupCmd) -> Result<()> {
    match cmd {
        GroupCmd::List => list(ctx),
        GroupCmd::Describe(a) => describe(ctx, a),
        GroupCmd::Delete(a) => delete(ctx, a),
        GroupCmd::ResetOffsets(a) => group_reset::run(ctx, a),
    }
}

#[derive(Serialize)]
struct Listed {
    group: String,
    /// Empty where the broker is older than ListGroups v4.
    state: String,
    protocol_type: String,
    coordinator: i32,
}

fn list(ctx: &Ctx) -> Result<()> {
    let mut client = ctx.connect()?;
    client.metadata(Some(&[]), false)?;
    let mut groups = Vec::new();
    for node in client.broker_ids() {
        let resp = client.broker(node)?.call(&ListGroupsRequest::default())?;
        AdminError::check(resp.error_code, None, || {
            format!("list groups on broker {node}")
        })?;
        groups.extend(resp.groups.into_iter().map(|g| Listed {
            group: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            coordinator: node,
        }));
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    if ctx.json() {
        return print_json(&groups);
    }
    let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
    for g in &groups {
        t.row(vec![
            g.group.clone(),
            g.state.clone(),
            g.protocol_type.clone(),
            g.coordinator.to_string(),
        ]);
    }
    t.print()
}

/// One group as DescribeGroups tells it: the state and members.
pub fn describe_one(client: &mut Client, group: &str) -> Result<DescribedGroup> {
    let req = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let resp = client.coordinator(group)?.call(&req)?;
    let g =
        resp.groups.into_iter().next().ok_or_else(|| {
            AdminError::Protocol(format!("DescribeGroups: no answer for {group}"))
        })?;
    AdminError::check(g.error_code, g.error_message.as_deref(), || {
        format!("group {group}")
    })?;
    Ok(g)
}

#[derive(Serialize)]
struct PartitionLag {
    topic: String,
    partition: i32,
    /// `None`: nothing committed yet.
    current_offset: Option<i64>,
    log_end_offset: i64,
    lag: Option<i64>,
    member_id: Option<String>,
    client_id: Option<String>,
    host: Option<String>,
}

#[derive(Serialize)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    partitions: usize,
}

#[derive(Serialize)]
struct Described {
    group: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
    partitions: Vec<PartitionLag>,
}

fn describe(ctx: &Ctx, a: GroupNames) -> Result<()> {
    let mut client = ctx.connect()?;
    let mut out = Vec::new();
    for group in &a.groups {
        out.push(describe_group(&mut client, group)?);
    }
    print_described(ctx, &out, describe_text)
}

fn describe_group(client: &mut Client, group: &str) -> Result<Described> {
    let g = describe_one(client, group)?;
    let offsets = committed(client.coordinator(group)?, group, None)?;
    if g.group_state.as_str() == "Dead" && offsets.is_empty() {
        return Err(AdminError::Kafka {
            context: format!("group {group}"),
            code: GROUP_ID_NOT_FOUND,
            message: Some("the group does not exist".into()),
        });
    }
    // Who owns what: the consumer protocol's assignments.
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut members = Vec::new();
    for (i, m) in g.members.iter().enumerate() {
        let mut n = 0;
        if g.protocol_type.as_str() == "consumer" && !m.member_assignment.is_empty() {
            let mut bytes = m.member_assignment.clone();
            if let Ok(a) = decode_versioned::<ConsumerProtocolAssignment>(&mut bytes) {
                for tp in a.assigned_partitions {
                    for p in tp.partitions {
                        owner.insert((tp.topic.0.to_string(), p), i);
                        n += 1;
                    }
                }
            }
        }
        members.push(Member {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            partitions: n,
        });
    }
    let parts: BTreeSet<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    let parts: Vec<(String, i32)> = parts.into_iter().collect();
    let topics: Vec<String> = parts
        .iter()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ends = if parts.is_empty() {
        BTreeMap::new()
    } else {
        let view = client.metadata(Some(&topics), false)?;
        // A topic deleted since the commit has no end: leave it out of
        // the lag rather than fail the whole description.
        let live: Vec<(String, i32)> = parts
            .iter()
            .filter(|(t, p)| view.topic(t).and_then(|t| t.leader(*p)).is_ok())
            .cloned()
            .collect();
        client.offsets_at(&view, &live, LATEST)?
    };
    let partitions = parts
        .into_iter()
        .map(|tp| {
            let current = offsets.get(&tp).copied();
            let end = ends.get(&tp).copied().unwrap_or(-1);
            let m = owner.get(&tp).map(|&i| &members[i]);
            PartitionLag {
                current_offset: current,
                log_end_offset: end,
                lag: current.filter(|_| end >= 0).map(|c| (end - c).max(0)),
                member_id: m.map(|m| m.member_id.clone()),
                client_id: m.map(|m| m.client_id.clone()),
                host: m.map(|m| m.host.clone()),
                topic: tp.0,
                partition: tp.1,
            }
        })
        .collect();
    Ok(Described {
        group: group.to_string(),
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members,
        partitions,
    })
}

fn describe_text(d: &Described) -> String {
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let num = |o: Option<i64>| o.map_or_else(|| "-".to_string(), |v| v.to_string());
    let mut summary = Table::new(&["GROUP", "STATE", "PROTOCOL", "MEMBERS"]);
    summary.row(vec![
        d.group.clone(),
        d.state.clone(),
        format!("{}/{}", d.protocol_type, d.protocol),
        d.members.len().to_string(),
    ]);
    let mut t = Table::new(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for p in &d.partitions {
        t.row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            num(p.current_offset),
            num(Some(p.log_end_offset).filter(|&e| e >= 0)),
            num(p.lag),
            dash(&p.member_id),
            dash(&p.host),
            dash(&p.client_id),
        ]);
    }
    format!("{}\n{}", summary.render(), t.render())
}

fn delete(ctx: &Ctx, a: GroupNames) -> Result<()> {
    let mut client = ctx.connect()?;
    let mut by_coordinator: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in &a.groups {
        by_coordinator
            .entry(client.coordinator_addr(g)?)
            .or_default()
            .push(g.clone());
    }
    let mut outcomes = Vec::new();
    for (addr, groups) in by_coordinator {
        let req = DeleteGroupsRequest::default()
            .with_groups_names(groups.iter().map(|g| group_id(g)).collect());
        let resp = client.at(&addr)?.call(&req)?;
        outcomes.extend(
            resp.results
                .into_iter()
                .map(|r| Outcome::of(r.group_id.0.to_string(), r.error_code, None)),
        );
    }
    outcomes.sort_by(|x, y| x.name.cmp(&y.name));
    report(ctx, "GROUP", &outcomes, "OK")
}
