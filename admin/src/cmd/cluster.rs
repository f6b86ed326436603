//! `spindle cluster info|health`. Both read Metadata alone, which every
//! Kafka broker serves: brokers, controller and cluster id for `info`;
//! for `health` every partition's leader, replicas, ISR and offline
//! replicas. Health is what Kafka's `--under-replicated-partitions`,
//! `--unavailable-partitions` and rpk's `cluster health` report.

use serde::Serialize;

use crate::cli::ClusterCmd;
use crate::client::BrokerInfo;
use crate::error::{AdminError, Result};
use crate::output::{ids, print_json, Table};
use crate::Ctx;

pub fn run(ctx: &Ctx, cmd: ClusterCmd) -> Result<()> {
    match cmd {
        ClusterCmd::Info => info(ctx),
        ClusterCmd::Health => health(ctx),
    }
}

#[derive(Serialize)]
struct Info {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<BrokerInfo>,
}

fn info(ctx: &Ctx) -> Result<()> {
    let view = ctx.connect()?.metadata(Some(&[]), false)?;
    let info = Info {
        cluster_id: view.cluster_id,
        controller_id: view.controller,
        brokers: view.brokers,
    };
    if ctx.json() {
        return print_json(&info);
    }
    let mut head = Table::new(&["CLUSTER", "CONTROLLER"]);
    head.row(vec![
        info.cluster_id.clone().unwrap_or_else(|| "-".into()),
        info.controller_id.to_string(),
    ]);
    let mut t = Table::new(&["ID", "HOST", "PORT", "RACK"]);
    for b in &info.brokers {
        let mark = if b.id == info.controller_id { "*" } else { "" };
        t.row(vec![
            format!("{}{mark}", b.id),
            b.host.clone(),
            b.port.to_string(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    crate::output::write_stdout(&format!("{}\n{}", head.render(), t.render()))
}

#[derive(Serialize)]
struct Problem {
    topic: String,
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    offline_replicas: Vec<i32>,
    /// leaderless, offline, under-replicated (a partition can be several).
    problems: Vec<&'static str>,
}

#[derive(Serialize)]
struct Health {
    healthy: bool,
    brokers: Vec<i32>,
    controller_id: i32,
    topics: usize,
    partitions: usize,
    leaderless_partitions: usize,
    offline_partitions: usize,
    under_replicated_partitions: usize,
    unhealthy: Vec<Problem>,
}

fn health(ctx: &Ctx) -> Result<()> {
    let view = ctx.connect()?.metadata(None, false)?;
    let mut h = Health {
        healthy: true,
        brokers: view.brokers.iter().map(|b| b.id).collect(),
        controller_id: view.controller,
        topics: view.topics.len(),
        partitions: 0,
        leaderless_partitions: 0,
        offline_partitions: 0,
        under_replicated_partitions: 0,
        unhealthy: Vec::new(),
    };
    for t in &view.topics {
        for p in &t.partitions {
            h.partitions += 1;
            let mut problems = Vec::new();
            // LEADER_NOT_AVAILABLE (5) comes with leader -1 on most brokers,
            // but not all: either means no leader.
            if p.leader < 0 || p.error_code == 5 {
                h.leaderless_partitions += 1;
                problems.push("leaderless");
            }
            if !p.offline_replicas.is_empty() {
                h.offline_partitions += 1;
                problems.push("offline");
            }
            if p.isr.len() < p.replicas.len() {
                h.under_replicated_partitions += 1;
                problems.push("under-replicated");
            }
            if !problems.is_empty() {
                h.unhealthy.push(Problem {
                    topic: t.name.clone(),
                    partition: p.partition,
                    leader: p.leader,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    offline_replicas: p.offline_replicas.clone(),
                    problems,
                });
            }
        }
    }
    h.healthy = h.unhealthy.is_empty() && !view.brokers.is_empty();
    if ctx.json() {
        print_json(&h)?;
    } else {
        let mut t = Table::new(&[
            "HEALTHY",
            "BROKERS",
            "CONTROLLER",
            "PARTITIONS",
            "LEADERLESS",
            "OFFLINE",
            "UNDER-REPLICATED",
        ]);
        t.row(vec![
            if h.healthy { "yes" } else { "no" }.into(),
            ids(&h.brokers),
            h.controller_id.to_string(),
            h.partitions.to_string(),
            h.leaderless_partitions.to_string(),
            h.offline_partitions.to_string(),
            h.under_replicated_partitions.to_string(),
        ]);
        let mut out = t.render();
        if !h.unhealthy.is_empty() {
            let mut p = Table::new(&[
                "TOPIC",
                "PARTITION",
                "LEADER",
                "REPLICAS",
                "ISR",
                "OFFLINE",
                "PROBLEMS",
            ]);
            for u in &h.unhealthy {
                p.row(vec![
                    u.topic.clone(),
                    u.partition.to_string(),
                    u.leader.to_string(),
                    ids(&u.replicas),
                    ids(&u.isr),
                    ids(&u.offline_replicas),
                    u.problems.join(","),
                ]);
            }
            out = format!("{out}\n{}", p.render());
        }
        crate::output::write_stdout(&out)?;
    }
    if h.healthy {
        Ok(())
    } else {
        Err(AdminError::Unhealthy(format!(
            "the cluster is unhealthy: {} leaderless, {} offline, {} under-replicated partitions",
            h.leaderless_partitions, h.offline_partitions, h.under_replicated_partitions
        )))
    }
}
