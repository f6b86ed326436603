//! `spindle group reset-offsets GROUP`: kafka-consumer-groups
//! --reset-offsets. The plan (current and new offset per partition) is
//! always printed; only `--execute` commits it. As in Kafka, the group
//! must have no members, also for a dry run: a live member would commit
//! over the new offsets at once, so the plan would be a lie. New offsets
//! are kept within the log (log start to end), and a time after the last
//! record resets to the end. The commit is an admin's: generation -1 and
//! no member id, which a coordinator accepts only for an empty group.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::ResetOffsets;
use crate::client::{Client, ClusterView, EARLIEST, LATEST};
use crate::cmd::group::describe_one;
use crate::error::{AdminError, Result};
use crate::group_offsets::{commit, committed, Offsets};
use crate::output::{print_json, write_stdout, Table};
use crate::Ctx;

#[derive(Serialize)]
struct Planned {
    topic: String,
    partition: i32,
    /// `None`: nothing committed yet.
    current_offset: Option<i64>,
    new_offset: i64,
}

#[derive(Serialize)]
struct Plan {
    group: String,
    executed: bool,
    partitions: Vec<Planned>,
}

pub fn run(ctx: &Ctx, a: ResetOffsets) -> Result<()> {
    let mut client = ctx.connect()?;
    let g = describe_one(&mut client, &a.group)?;
    let state = g.group_state.to_string();
    if !matches!(state.as_str(), "Empty" | "Dead") {
        return Err(AdminError::Failed(format!(
            "group {}: offsets can be reset only while the group has no members, but it is {state} with {} members (stop its consumers first)",
            a.group,
            g.members.len()
        )));
    }
    let current = committed(client.coordinator(&a.group)?, &a.group, None)?;
    let (view, parts) = partitions(&mut client, &a, &current)?;
    let new = targets(&mut client, &view, &a, &parts, &current)?;
    if a.execute {
        commit(client.coordinator(&a.group)?, &a.group, -1, "", &new)?;
    }
    let plan = Plan {
        group: a.group.clone(),
        executed: a.execute,
        partitions: new
            .iter()
            .map(|(tp, &o)| Planned {
                topic: tp.0.clone(),
                partition: tp.1,
                current_offset: current.get(tp).copied(),
                new_offset: o,
            })
            .collect(),
    };
    if ctx.json() {
        print_json(&plan)?;
    } else {
        let mut t = Table::new(&[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
        ]);
        for p in &plan.partitions {
            t.row(vec![
                plan.group.clone(),
                p.topic.clone(),
                p.partition.to_string(),
                p.current_offset
                    .map_or_else(|| "-".into(), |o| o.to_string()),
                p.new_offset.to_string(),
            ]);
        }
        write_stdout(&t.render())?;
    }
    if !a.execute {
        eprintln!("dry run: nothing was committed; add --execute to commit these offsets");
    }
    Ok(())
}

/// The partitions to reset: those named, every partition of a topic
/// named alone, or (`--all-topics`) every partition with a committed offset.
fn partitions(
    client: &mut Client,
    a: &ResetOffsets,
    current: &Offsets,
) -> Result<(ClusterView, Vec<(String, i32)>)> {
    let mut topics: Vec<String> = if a.all_topics {
        current.keys().map(|(t, _)| t.clone()).collect()
    } else {
        a.topic.iter().map(|(t, _)| t.clone()).collect()
    };
    topics.sort();
    topics.dedup();
    if topics.is_empty() {
        return Err(AdminError::Failed(format!(
            "group {} has no committed offsets: name the topics with --topic",
            a.group
        )));
    }
    let view = client.metadata(Some(&topics), false)?;
    let mut parts = Vec::new();
    if a.all_topics {
        parts.extend(current.keys().cloned());
    }
    for (t, ps) in &a.topic {
        let info = view.topic(t)?;
        match ps {
            Some(ps) => {
                for &p in ps {
                    info.leader(p)?;
                    parts.push((t.clone(), p));
                }
            }
            None => parts.extend(info.partitions.iter().map(|p| (t.clone(), p.partition))),
        }
    }
    parts.sort();
    parts.dedup();
    Ok((view, parts))
}

fn targets(
    client: &mut Client,
    view: &ClusterView,
    a: &ResetOffsets,
    parts: &[(String, i32)],
    current: &Offsets,
) -> Result<Offsets> {
    let starts = client.offsets_at(view, parts, EARLIEST)?;
    let ends = client.offsets_at(view, parts, LATEST)?;
    let by_time = match a.to_datetime {
        Some(ts) => client.offsets_at(view, parts, ts)?,
        None => BTreeMap::new(),
    };
    let mut out = Offsets::new();
    for tp in parts {
        let missing =
            || AdminError::Protocol(format!("ListOffsets: no answer for {}/{}", tp.0, tp.1));
        let start = starts.get(tp).copied().ok_or_else(missing)?;
        let end = ends.get(tp).copied().ok_or_else(missing)?;
        let clamp = |o: i64| o.clamp(start, end.max(start));
        let new = if a.to_earliest {
            start
        } else if a.to_latest {
            end
        } else if a.to_datetime.is_some() {
            // -1: no record at or after that time.
            match by_time.get(tp).copied() {
                Some(o) if o >= 0 => o,
                _ => end,
            }
        } else if let Some(n) = a.shift_by {
            let c = current.get(tp).ok_or_else(|| {
                AdminError::Failed(format!(
                    "group {} has no committed offset for {}/{} to shift",
                    a.group, tp.0, tp.1
                ))
            })?;
            clamp(c.saturating_add(n))
        } else if let Some(o) = a.to_offset {
            clamp(o)
        } else {
            return Err(AdminError::Usage(
                "one of --to-earliest, --to-latest, --to-datetime, --shift-by, --to-offset".into(),
            ));
        };
        out.insert(tp.clone(), new);
    }
    Ok(out)
}
