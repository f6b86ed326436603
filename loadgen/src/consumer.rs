//! Fetch consumers: on explicitly assigned partitions (the default), or as
//! members of a classic consumer group (JoinGroup/SyncGroup/Heartbeat with
//! a range assignor computed by the elected leader, as the Java client's
//! RangeAssignor does). Offsets are not committed: every run starts from
//! earliest or latest.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use spindle_codec::kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic},
    join_group_request::JoinGroupRequestProtocol,
    sync_group_request::SyncGroupRequestAssignment,
    BrokerId, FetchRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest,
};
use spindle_codec::kafka_protocol::protocol::StrBytes;

use crate::batch::walk_batches;
use crate::client::{find_coordinator, list_offsets, topic_name};
use crate::config::{ConsumerConfig, StartFrom};
use crate::conn::Conn;
use crate::stats::{record, Hists, Shared};

pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const ILLEGAL_GENERATION: i16 = 22;
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// Bounded rejoin attempts before the consumer gives up.
const JOIN_ATTEMPTS_MAX: u32 = 20;

#[derive(Clone)]
pub struct ConsumerPlan {
    pub index: u32,
    pub topic: String,
    pub bootstrap: String,
    /// Leader address of each partition.
    pub leaders: Vec<String>,
    /// Explicit assignment; ignored in group mode.
    pub assigned: Vec<i32>,
    /// Group id when consuming in a group.
    pub group: Option<String>,
    pub config: ConsumerConfig,
    /// Read send stamps for end-to-end latency.
    pub e2e: bool,
}

/// Range assignment of `partitions` over `members` (sorted by id): the
/// first `partitions % members` get one extra.
pub fn range_assign(members: &[String], partitions: i32) -> HashMap<String, Vec<i32>> {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    let m = sorted.len() as i32;
    let mut out = HashMap::new();
    if m == 0 {
        return out;
    }
    let (per, extra) = (partitions / m, partitions % m);
    let mut next = 0;
    for (i, id) in sorted.iter().enumerate() {
        let n = per + i32::from((i as i32) < extra);
        out.insert((*id).clone(), (next..next + n).collect());
        next += n;
    }
    out
}

/// ConsumerProtocolSubscription v0 for one topic.
pub fn encode_subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

/// ConsumerProtocolAssignment v0 for one topic.
pub fn encode_assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

/// Reads the partitions of `topic` from a ConsumerProtocolAssignment.
pub fn decode_assignment(mut b: Bytes, topic: &str) -> Result<Vec<i32>> {
    let need = |b: &Bytes, n: usize| {
        if b.remaining() < n {
            Err(anyhow!("assignment truncated"))
        } else {
            Ok(())
        }
    };
    if b.is_empty() {
        return Ok(Vec::new());
    }
    need(&b, 6)?;
    let _version = b.get_i16();
    let topics = b.get_i32();
    let mut out = Vec::new();
    for _ in 0..topics.clamp(0, 100_000) {
        need(&b, 2)?;
        let len = b.get_i16().max(0) as usize;
        need(&b, len + 4)?;
        let name = b.split_to(len);
        let n = b.get_i32().clamp(0, 1_000_000) as usize;
        need(&b, n * 4)?;
        for _ in 0..n {
            let p = b.get_i32();
            if name.as_ref() == topic.as_bytes() {
                out.push(p);
            }
        }
    }
    Ok(out)
}

struct Group {
    conn: Conn,
    id: String,
    member_id: String,
    generation: i32,
    last_heartbeat: Instant,
}

impl Group {
    fn join(
        coordinator: &str,
        id: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<(Group, Vec<i32>)> {
        let conn = Conn::connect(coordinator)?;
        let mut g = Group {
            conn,
            id: id.to_string(),
            member_id: String::new(),
            generation: -1,
            last_heartbeat: Instant::now(),
        };
        let assigned = g.rejoin(topic, partitions)?;
        Ok((g, assigned))
    }

    fn rejoin(&mut self, topic: &str, partitions: i32) -> Result<Vec<i32>> {
        for _ in 0..JOIN_ATTEMPTS_MAX {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(self.id.clone())))
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(30_000)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(encode_subscription(topic))]);
            let resp = self.conn.call(&req, (1, 7))?;
            match resp.error_code {
                0 => {}
                MEMBER_ID_REQUIRED => {
                    self.member_id = resp.member_id.to_string();
                    continue;
                }
                UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                REBALANCE_IN_PROGRESS => continue,
                e => bail!("JoinGroup: error {e}"),
            }
            self.member_id = resp.member_id.to_string();
            self.generation = resp.generation_id;
            let assignments = if resp.leader == resp.member_id {
                let members: Vec<String> = resp
                    .members
                    .iter()
                    .map(|m| m.member_id.to_string())
                    .collect();
                range_assign(&members, partitions)
                    .into_iter()
                    .map(|(m, ps)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(m))
                            .with_assignment(encode_assignment(topic, &ps))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(self.id.clone())))
                .with_generation_id(self.generation)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(StrBytes::from_static_str("range")))
                .with_assignments(assignments);
            let s = self.conn.call(&sync, (1, 5))?;
            match s.error_code {
                0 => {
                    self.last_heartbeat = Instant::now();
                    return decode_assignment(s.assignment, topic);
                }
                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => continue,
                UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    continue;
                }
                e => bail!("SyncGroup: error {e}"),
            }
        }
        bail!(
            "group {} did not settle after {JOIN_ATTEMPTS_MAX} joins",
            self.id
        )
    }

    /// Heartbeats when due; `Some(partitions)` when the group rebalanced.
    fn tick(&mut self, topic: &str, partitions: i32) -> Result<Option<Vec<i32>>> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_EVERY {
            return Ok(None);
        }
        self.last_heartbeat = Instant::now();
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.id.clone())))
            .with_generation_id(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let resp = self.conn.call(&req, (0, 4))?;
        match resp.error_code {
            0 => Ok(None),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
                Ok(Some(self.rejoin(topic, partitions)?))
            }
            e => bail!("Heartbeat: error {e}"),
        }
    }

    fn leave(&mut self) {
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.id.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let _ = self.conn.call(&req, (0, 2));
    }
}

/// Runs one consumer until `stop_all`. Returns the records it consumed.
pub fn run_consumer(plan: ConsumerPlan, shared: Arc<Shared>, ready: Arc<Barrier>) -> Result<u64> {
    let setup = (|| -> Result<(Conn, Option<Group>, HashMap<i32, i64>)> {
        let partitions = plan.leaders.len() as i32;
        let (group, assigned) = match &plan.group {
            Some(id) => {
                let mut boot = Conn::connect(&plan.bootstrap)?;
                let advertised = find_coordinator(&mut boot, id)?;
                // A single-broker cluster is reached where the user said
                // (see client::metadata).
                let coord = if plan.leaders.iter().all(|l| l == &plan.bootstrap) {
                    plan.bootstrap.clone()
                } else {
                    advertised
                };
                let (g, a) = Group::join(&coord, id, &plan.topic, partitions)?;
                (Some(g), a)
            }
            None => (None, plan.assigned.clone()),
        };
        let addr = plan
            .leaders
            .first()
            .cloned()
            .unwrap_or_else(|| plan.bootstrap.clone());
        if plan.leaders.iter().any(|l| l != &addr) {
            bail!("consumer: partitions led by several brokers; loadgen consumers fetch from one leader");
        }
        let mut conn = Conn::connect(&addr)?;
        let offsets = start_offsets(&mut conn, &plan, &assigned)?;
        Ok((conn, group, offsets))
    })();
    ready.wait();
    let (mut conn, mut group, mut offsets) = setup?;
    let hists = shared.register();
    let result = fetch_loop(&plan, &shared, &hists, &mut conn, &mut group, &mut offsets);
    if let Some(g) = group.as_mut() {
        g.leave();
    }
    result
}

fn start_offsets(
    conn: &mut Conn,
    plan: &ConsumerPlan,
    assigned: &[i32],
) -> Result<HashMap<i32, i64>> {
    if assigned.is_empty() {
        return Ok(HashMap::new());
    }
    let ts = match plan.config.from {
        StartFrom::Earliest => -2,
        StartFrom::Latest => -1,
    };
    list_offsets(conn, &plan.topic, assigned, ts)
}

fn fetch_loop(
    plan: &ConsumerPlan,
    shared: &Shared,
    hists: &Mutex<Hists>,
    conn: &mut Conn,
    group: &mut Option<Group>,
    offsets: &mut HashMap<i32, i64>,
) -> Result<u64> {
    let mut consumed = 0u64;
    let partitions = plan.leaders.len() as i32;
    let mut stamps: Vec<u64> = Vec::with_capacity(4096);
    while !shared.stop_all.load(Ordering::Relaxed) {
        if let Some(g) = group.as_mut() {
            if let Some(assigned) = g.tick(&plan.topic, partitions)? {
                *offsets = start_offsets(conn, plan, &assigned)?;
            }
        }
        if shared.consumers_paused.load(Ordering::Relaxed) || offsets.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut parts: Vec<(i32, i64)> = offsets.iter().map(|(p, o)| (*p, *o)).collect();
        parts.sort_unstable();
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(plan.config.fetch_max_wait_ms)
            .with_min_bytes(plan.config.fetch_min_bytes)
            .with_max_bytes(plan.config.fetch_max_bytes)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(&plan.topic))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&(p, o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(o)
                                .with_current_leader_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(plan.config.partition_max_bytes)
                        })
                        .collect(),
                )]);
        let resp = conn.call(&req, (4, 12))?;
        if resp.error_code != 0 {
            bail!("fetch: error {}", resp.error_code);
        }
        let now = shared.now_ns();
        for t in resp.responses {
            for p in t.partitions {
                let Some(offset) = offsets.get_mut(&p.partition_index) else {
                    continue;
                };
                if p.error_code == OFFSET_OUT_OF_RANGE {
                    let reset = list_offsets(conn, &plan.topic, &[p.partition_index], -2)?;
                    *offset = reset.get(&p.partition_index).copied().unwrap_or(0);
                    continue;
                }
                if p.error_code != 0 {
                    shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                    crate::report::note_error(&format!("fetch error code {}", p.error_code));
                    continue;
                }
                let Some(records) = p.records else { continue };
                let (n, bytes) =
                    take_records(&records, offset, plan.e2e, shared.run_id, &mut stamps)?;
                consumed += n;
                let c = &shared.counters;
                c.consumed_msgs.fetch_add(n, Ordering::Relaxed);
                c.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
                if shared.measuring(now) {
                    c.measured_consumed_msgs.fetch_add(n, Ordering::Relaxed);
                    c.measured_consumed_bytes
                        .fetch_add(bytes, Ordering::Relaxed);
                }
                if !stamps.is_empty() {
                    if let Ok(mut h) = hists.lock() {
                        let h = &mut *h;
                        for &s in &stamps {
                            record(
                                &mut h.e2e_interval,
                                &mut h.e2e_total,
                                now.saturating_sub(s) / 1000,
                                shared.measuring(s),
                            );
                        }
                    }
                    stamps.clear();
                }
            }
        }
    }
    Ok(consumed)
}

/// Counts the records at or after `*offset` in `records`, advances the
/// offset past them and collects this run's send stamps. Returns (records,
/// bytes of the batches).
pub fn take_records(
    records: &[u8],
    offset: &mut i64,
    e2e: bool,
    run_id: u32,
    stamps: &mut Vec<u64>,
) -> Result<(u64, u64)> {
    let mut n = 0u64;
    let mut bytes = 0u64;
    let mut skip_for_batch: Vec<i64> = Vec::new();
    walk_batches(
        records,
        false,
        false,
        |b| {
            let last = b.base_offset + i64::from(b.last_offset_delta);
            if last < *offset {
                skip_for_batch.push(-1);
                return;
            }
            let first = b.base_offset.max(*offset);
            skip_for_batch.push(first - b.base_offset);
            if b.records > 0 {
                n += (last - first + 1) as u64;
            }
            bytes += b.size as u64;
            *offset = last + 1;
        },
        |_, _, _, _| {},
    )
    .map_err(|e| anyhow!("fetched records: {e}"))?;
    if e2e && n > 0 {
        // Second pass for the stamps, skipping records before the start.
        walk_batches(
            records,
            true,
            false,
            |_| {},
            |batch, i, run, s| {
                let skip = skip_for_batch.get(batch).copied().unwrap_or(-1);
                if skip >= 0 && i64::from(i) >= skip && run == run_id {
                    stamps.push(s);
                }
            },
        )
        .map_err(|e| anyhow!("fetched records: {e}"))?;
    }
    Ok((n, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression};
    use crate::payload::{write_stamp, STAMP_LEN};

    #[test]
    fn range_assignor_matches_kafka() {
        let members = vec!["c".to_string(), "a".to_string(), "b".to_string()];
        let a = range_assign(&members, 8);
        assert_eq!(a["a"], vec![0, 1, 2]);
        assert_eq!(a["b"], vec![3, 4, 5]);
        assert_eq!(a["c"], vec![6, 7]);
        let one = range_assign(&["x".to_string()], 4);
        assert_eq!(one["x"], vec![0, 1, 2, 3]);
        let many = range_assign(&["a".into(), "b".into(), "c".into()], 1);
        assert_eq!(many["a"], vec![0]);
        assert!(many["b"].is_empty());
    }

    #[test]
    fn assignment_round_trip() {
        let b = encode_assignment("t", &[1, 5, 9]);
        assert_eq!(decode_assignment(b.clone(), "t").unwrap(), vec![1, 5, 9]);
        assert!(decode_assignment(b.clone(), "other").unwrap().is_empty());
        assert!(decode_assignment(b.slice(..b.len() - 6), "t").is_err());
        assert!(decode_assignment(Bytes::new(), "t").unwrap().is_empty());
    }

    fn batch_at(base: i64, n: u32, run: u32) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None, 1024);
        for i in 0..n {
            let mut s = [0u8; STAMP_LEN];
            write_stamp(&mut s, run, base as u64 * 100 + u64::from(i));
            b.append(0, None, &s, b"x");
        }
        let mut v = b.finish(None, -1).unwrap().to_vec();
        v[0..8].copy_from_slice(&base.to_be_bytes());
        v
    }

    #[test]
    fn records_before_the_fetch_offset_are_not_counted() {
        let mut data = batch_at(10, 5, 1);
        data.extend_from_slice(&batch_at(15, 3, 1));
        let mut off = 12;
        let mut stamps = Vec::new();
        let (n, _) = take_records(&data, &mut off, true, 1, &mut stamps).unwrap();
        assert_eq!(n, 6);
        assert_eq!(off, 18);
        assert_eq!(stamps, vec![1002, 1003, 1004, 1500, 1501, 1502]);
        // Foreign runs are counted but give no latency.
        let mut off = 0;
        let mut stamps = Vec::new();
        let (n, _) = take_records(&batch_at(0, 4, 9), &mut off, true, 1, &mut stamps).unwrap();
        assert_eq!(n, 4);
        assert!(stamps.is_empty());
    }
}
