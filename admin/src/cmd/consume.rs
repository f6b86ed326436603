//! `spindle consume TOPIC`: prints records as they are fetched from each
//! partition's leader. It starts at `--offset` (earliest by default, as
//! rpk does: a first look at a topic shows what is in it) or at the first
//! record at or after `--from-time` (ListOffsets by timestamp), and stops
//! after `--count` records, at the end with `--exit-at-end`, or never.
//! With `--group` it reads as a member of a consumer group instead
//! ([`super::consume_group`]): committed offsets first, partitions shared
//! with the group's other members.
//!
//! Text output is the value alone unless `--print-*` asks for more,
//! fields separated by `--key-sep` (a tab by default), so that `produce
//! --key-sep` reads back what `consume --print-key` writes. JSON output is
//! one object per record and line.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;
use spindle_codec::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use spindle_codec::kafka_protocol::messages::{BrokerId, FetchRequest};

use crate::cli::{ConsumeArgs, OffsetSpec};
use crate::client::{topic_name, Client, ClusterView, EARLIEST, LATEST};
use crate::cmd::consume_group;
use crate::error::{AdminError, Result};
use crate::output::{write_stdout, Format};
use crate::records::{decode, next_offset, Incoming};
use crate::Ctx;

/// Fetch bounds: a long poll of at most half a second, so a group member
/// heartbeats in time, and at most 1 MiB a partition, 8 MiB an answer.
const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_PARTITION_BYTES_MAX: i32 = 1 << 20;
const FETCH_BYTES_MAX: i32 = 8 << 20;
const OFFSET_OUT_OF_RANGE: i16 = 1;

pub fn run(ctx: &Ctx, a: ConsumeArgs) -> Result<()> {
    let mut client = ctx.connect()?;
    let view = client.metadata(Some(std::slice::from_ref(&a.topic)), false)?;
    let topic = view.topic(&a.topic)?;
    for &p in &a.partitions {
        topic.leader(p)?;
    }
    let mut out = Printer::new(ctx.format, &a);
    match a.group.clone() {
        Some(group) => consume_group::run(ctx, &mut client, &view, &a, &group, &mut out),
        None => {
            let partitions: Vec<i32> = if a.partitions.is_empty() {
                topic.partitions.iter().map(|p| p.partition).collect()
            } else {
                a.partitions.clone()
            };
            let positions = start_positions(&mut client, &view, &a, &partitions)?;
            let mut fetcher = Fetcher::new(&a.topic, positions);
            if a.exit_at_end {
                fetcher.stop_at_end(&mut client, &view)?;
            }
            while !fetcher.done() && !out.done() {
                let records = fetcher.fetch(&mut client, &view)?;
                print_all(&mut fetcher, records, &mut out)?;
            }
            Ok(())
        }
    }
}

/// Prints fetched records until `--count` is reached. A partition whose
/// records were not all printed goes back to the first one left, so a
/// group's commit never covers a record that was not shown.
pub fn print_all(
    fetcher: &mut Fetcher,
    records: Vec<(i32, Incoming)>,
    out: &mut Printer,
) -> Result<()> {
    for (p, r) in records {
        if out.done() {
            fetcher.rewind(p, r.offset);
        } else {
            out.record(p, &r)?;
        }
    }
    Ok(())
}

/// Where each partition starts, from `--offset` or `--from-time`.
pub fn start_positions(
    client: &mut Client,
    view: &ClusterView,
    a: &ConsumeArgs,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>> {
    let parts: Vec<(String, i32)> = partitions.iter().map(|&p| (a.topic.clone(), p)).collect();
    let at = |m: BTreeMap<(String, i32), i64>| -> BTreeMap<i32, i64> {
        m.into_iter().map(|((_, p), o)| (p, o)).collect()
    };
    if let Some(ts) = a.from_time {
        let found = at(client.offsets_at(view, &parts, ts)?);
        let ends = at(client.offsets_at(view, &parts, LATEST)?);
        // -1: no record that late, so start at the end.
        return Ok(found
            .into_iter()
            .map(|(p, o)| {
                (
                    p,
                    if o < 0 {
                        ends.get(&p).copied().unwrap_or(0)
                    } else {
                        o
                    },
                )
            })
            .collect());
    }
    Ok(match a.offset {
        OffsetSpec::Earliest => at(client.offsets_at(view, &parts, EARLIEST)?),
        OffsetSpec::Latest => at(client.offsets_at(view, &parts, LATEST)?),
        OffsetSpec::At(n) => {
            let starts = at(client.offsets_at(view, &parts, EARLIEST)?);
            let ends = at(client.offsets_at(view, &parts, LATEST)?);
            for (&p, &start) in &starts {
                let end = ends.get(&p).copied().unwrap_or(start);
                if n < start || n > end {
                    return Err(AdminError::Kafka {
                        context: format!("offset {n} of {}/{p}", a.topic),
                        code: OFFSET_OUT_OF_RANGE,
                        message: Some(format!("the partition holds offsets {start} to {end}")),
                    });
                }
            }
            partitions.iter().map(|&p| (p, n)).collect()
        }
        OffsetSpec::FromEnd(n) => {
            let starts = at(client.offsets_at(view, &parts, EARLIEST)?);
            at(client.offsets_at(view, &parts, LATEST)?)
                .into_iter()
                .map(|(p, end)| (p, (end - n).max(starts.get(&p).copied().unwrap_or(0))))
                .collect()
        }
    })
}

/// Fetches one topic's partitions from their leaders, each from its own
/// position.
pub struct Fetcher {
    topic: String,
    pub positions: BTreeMap<i32, i64>,
    /// With `--exit-at-end`: the end of each partition when reading began.
    ends: Option<BTreeMap<i32, i64>>,
}

impl Fetcher {
    pub fn new(topic: &str, positions: BTreeMap<i32, i64>) -> Fetcher {
        Fetcher {
            topic: topic.to_string(),
            positions,
            ends: None,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Moves partition `p` back to `offset` if it is past it.
    pub fn rewind(&mut self, p: i32, offset: i64) {
        if let Some(o) = self.positions.get_mut(&p) {
            *o = (*o).min(offset);
        }
    }

    pub fn stop_at_end(&mut self, client: &mut Client, view: &ClusterView) -> Result<()> {
        let parts: Vec<(String, i32)> = self
            .positions
            .keys()
            .map(|&p| (self.topic.clone(), p))
            .collect();
        let ends = client.offsets_at(view, &parts, LATEST)?;
        self.ends = Some(ends.into_iter().map(|((_, p), o)| (p, o)).collect());
        Ok(())
    }

    fn partition_done(&self, p: i32, position: i64) -> bool {
        self.ends
            .as_ref()
            .is_some_and(|e| position >= e.get(&p).copied().unwrap_or(0))
    }

    /// Every partition has reached its end (only with `--exit-at-end`).
    pub fn done(&self) -> bool {
        self.ends.is_some()
            && self
                .positions
                .iter()
                .all(|(&p, &o)| self.partition_done(p, o))
    }

    /// One round of fetches (one request per leader); the records in
    /// partition order, positions moved past them.
    pub fn fetch(
        &mut self,
        client: &mut Client,
        view: &ClusterView,
    ) -> Result<Vec<(i32, Incoming)>> {
        let topic = view.topic(&self.topic)?;
        let mut by_leader: BTreeMap<i32, Vec<FetchPartition>> = BTreeMap::new();
        for (&p, &o) in &self.positions {
            if self.partition_done(p, o) {
                continue;
            }
            by_leader.entry(topic.leader(p)?).or_default().push(
                FetchPartition::default()
                    .with_partition(p)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(o)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(FETCH_PARTITION_BYTES_MAX),
            );
        }
        let mut out = Vec::new();
        for (leader, partitions) in by_leader {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(FETCH_MAX_WAIT_MS)
                .with_min_bytes(1)
                .with_max_bytes(FETCH_BYTES_MAX)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name(&self.topic))
                    .with_partitions(partitions)]);
            let resp = client.broker(leader)?.call(&req)?;
            AdminError::check(resp.error_code, None, || {
                format!("fetch from {}", self.topic)
            })?;
            for t in resp.responses {
                for p in t.partitions {
                    let at = self.positions.get(&p.partition_index).copied().unwrap_or(0);
                    AdminError::check(p.error_code, None, || {
                        format!("fetch {}/{} at offset {at}", self.topic, p.partition_index)
                    })?;
                    let Some(chunk) = p.records else { continue };
                    for r in decode(&chunk, at)? {
                        out.push((p.partition_index, r));
                    }
                    if let Some(next) = next_offset(&chunk) {
                        self.positions.insert(p.partition_index, next.max(at));
                    }
                }
            }
        }
        Ok(out)
    }
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<String>,
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<JsonHeader<'a>>,
}

/// Prints records and counts them against `--count`.
pub struct Printer {
    format: Format,
    topic: String,
    key: bool,
    headers: bool,
    partition: bool,
    offset: bool,
    timestamp: bool,
    sep: String,
    printed: u64,
    count: Option<u64>,
}

/// Keys, values and headers as text; bytes that are not UTF-8 are shown
/// with U+FFFD (the JSON and the terminal need text).
fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

impl Printer {
    pub fn new(format: Format, a: &ConsumeArgs) -> Printer {
        Printer {
            format,
            topic: a.topic.clone(),
            key: a.print_key,
            headers: a.print_headers,
            partition: a.print_partition,
            offset: a.print_offset,
            timestamp: a.print_timestamp,
            sep: a.key_sep.clone(),
            printed: 0,
            count: a.count,
        }
    }

    /// `--count` records have been printed.
    pub fn done(&self) -> bool {
        self.count.is_some_and(|c| self.printed >= c)
    }

    pub fn record(&mut self, partition: i32, r: &Incoming) -> Result<()> {
        let line = match self.format {
            Format::Json => {
                let j = JsonRecord {
                    topic: &self.topic,
                    partition,
                    offset: r.offset,
                    timestamp: r.timestamp_ms,
                    key: text(&r.key),
                    value: text(&r.value),
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| JsonHeader {
                            key: k,
                            value: text(v),
                        })
                        .collect(),
                };
                serde_json::to_string(&j)
                    .map_err(|e| AdminError::Protocol(format!("encode JSON: {e}")))?
            }
            Format::Text => self.text_line(partition, r),
        };
        self.printed += 1;
        write_stdout(&format!("{line}\n"))
    }

    fn text_line(&self, partition: i32, r: &Incoming) -> String {
        let mut fields = Vec::new();
        if self.partition {
            fields.push(partition.to_string());
        }
        if self.offset {
            fields.push(r.offset.to_string());
        }
        if self.timestamp {
            fields.push(r.timestamp_ms.to_string());
        }
        if self.headers {
            let hs: Vec<String> = r
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v).unwrap_or_default()))
                .collect();
            fields.push(hs.join(","));
        }
        if self.key {
            fields.push(text(&r.key).unwrap_or_default());
        }
        fields.push(text(&r.value).unwrap_or_default());
        fields.join(&self.sep)
    }
}
