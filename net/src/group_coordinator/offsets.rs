//! Committed offsets: commits (answered once their records are durable),
//! fetches, deletions, the drop of a deleted topic's offsets, and the
//! expiry of an empty group's offsets after the retention.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::BytesMut;
use spindle_codec::records::BatchWriter;
use tracing::{debug, info, warn};

use super::calls::{CommitTopic, FetchedPartition, GroupResult};
use super::group::{Group, GroupState};
use super::records::{self, Key, OffsetValue};
use super::{now, Entry, GroupCoordinator};
use crate::constants::OFFSET_METADATA_BYTES_MAX;
use crate::errors::{self, ErrorCode};
use crate::shard::Shard;

/// A committed offset in memory, with the log offset of the record that
/// set it (a commit only takes effect if its record is newer).
#[derive(Debug, Clone)]
pub(super) struct Committed {
    pub(super) value: OffsetValue,
    pub(super) record_offset: i64,
}

impl GroupCoordinator {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        topics: Vec<CommitTopic>,
    ) -> Vec<Vec<ErrorCode>> {
        let all = |code: ErrorCode| -> Vec<Vec<ErrorCode>> {
            topics
                .iter()
                .map(|t| vec![code; t.partitions.len()])
                .collect()
        };
        if group.is_empty() {
            return all(errors::INVALID_GROUP_ID);
        }
        let now = now();
        {
            let mut entries = self.entries.borrow_mut();
            if !entries.contains_key(&group) {
                if generation >= 0 {
                    return all(errors::ILLEGAL_GENERATION);
                }
                entries.insert(
                    group.clone(),
                    Entry {
                        group: Group::new(group.clone(), self.settings.limits, now),
                        partition,
                        offsets: HashMap::new(),
                    },
                );
            }
            let e = entries.get_mut(&group).expect("inserted above");
            if let Err(code) =
                e.group
                    .check_commit(&member_id, instance_id.as_deref(), generation, now)
            {
                return all(code);
            }
        }
        let snap = shard.snapshot();
        let mut codes: Vec<Vec<ErrorCode>> = Vec::with_capacity(topics.len());
        let mut w = BatchWriter::new(now.wall_ms);
        let mut written: Vec<(String, i32, OffsetValue, usize)> = Vec::new();
        for t in &topics {
            let known = snap.topic(&t.name).map(|m| m.owners.len() as i32);
            let mut tc = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let meta = p.metadata.clone().unwrap_or_default();
                let code = if !known.is_some_and(|n| (0..n).contains(&p.partition)) {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                } else if meta.len() > OFFSET_METADATA_BYTES_MAX {
                    errors::OFFSET_METADATA_TOO_LARGE
                } else {
                    let value = OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: meta,
                        commit_timestamp_ms: now.wall_ms,
                    };
                    let key = Key::Offset {
                        group: group.clone(),
                        topic: t.name.clone(),
                        partition: p.partition,
                    };
                    w.push(
                        &records::encode_key(&key),
                        Some(&records::encode_offset(&value)),
                    );
                    written.push((t.name.clone(), p.partition, value, w.count() as usize - 1));
                    errors::NONE
                };
                tc.push(code);
            }
            codes.push(tc);
        }
        if written.is_empty() {
            return codes;
        }
        let result = self.write_commit(shard, partition, w.finish()).await;
        match result {
            Ok(base) => {
                let mut entries = self.entries.borrow_mut();
                let e = entries.entry(group.clone()).or_insert_with(|| Entry {
                    group: Group::new(group.clone(), self.settings.limits, now),
                    partition,
                    offsets: HashMap::new(),
                });
                for (topic, p, value, i) in written {
                    let record_offset = base + i as i64;
                    let slot = e.offsets.entry((topic, p));
                    match slot {
                        std::collections::hash_map::Entry::Occupied(mut o) => {
                            if o.get().record_offset < record_offset {
                                o.insert(Committed {
                                    value,
                                    record_offset,
                                });
                            }
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(Committed {
                                value,
                                record_offset,
                            });
                        }
                    }
                }
            }
            Err(code) => {
                for tc in &mut codes {
                    for c in tc.iter_mut().filter(|c| **c == errors::NONE) {
                        *c = code;
                    }
                }
            }
        }
        codes
    }

    pub(super) async fn write_commit(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        batch: BytesMut,
    ) -> Result<i64, ErrorCode> {
        let (writer, log) = self.writer_and_log(shard, partition).await?;
        let _permit = writer.shared().await?;
        self.append(shard, &writer, &log, batch).await
    }

    pub(super) fn fetch(
        &self,
        group: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> GroupResult {
        let entries = self.entries.borrow();
        let e = entries.get(group);
        let get = |t: &str, p: i32| -> FetchedPartition {
            match e.and_then(|e| e.offsets.get(&(t.to_string(), p))) {
                Some(c) => FetchedPartition {
                    partition: p,
                    offset: c.value.offset,
                    leader_epoch: c.value.leader_epoch,
                    metadata: c.value.metadata.clone(),
                },
                None => FetchedPartition {
                    partition: p,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                },
            }
        };
        let out = match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.iter().map(|&p| get(&t, p)).collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> =
                    std::collections::BTreeMap::new();
                if let Some(e) = e {
                    for (t, p) in e.offsets.keys() {
                        by_topic.entry(t.clone()).or_default().push(*p);
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(t, mut ps)| {
                        ps.sort_unstable();
                        let parts = ps.iter().map(|&p| get(&t, p)).collect();
                        (t, parts)
                    })
                    .collect()
            }
        };
        GroupResult::Fetch(errors::NONE, out)
    }

    pub(super) async fn offset_delete(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        group: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> GroupResult {
        let (partition, codes, keys) = {
            let entries = self.entries.borrow();
            let Some(e) = entries.get(group) else {
                return GroupResult::OffsetDelete(errors::GROUP_ID_NOT_FOUND, Vec::new());
            };
            let mut keys = Vec::new();
            let mut codes = Vec::with_capacity(topics.len());
            for (t, ps) in &topics {
                if e.group.subscribes_to(t) {
                    codes.push(vec![errors::GROUP_SUBSCRIBED_TO_TOPIC; ps.len()]);
                    continue;
                }
                for &p in ps {
                    if e.offsets.contains_key(&(t.clone(), p)) {
                        keys.push(Key::Offset {
                            group: group.to_string(),
                            topic: t.clone(),
                            partition: p,
                        });
                    }
                }
                codes.push(vec![errors::NONE; ps.len()]);
            }
            (e.partition, codes, keys)
        };
        let g = group.to_string();
        let doomed = keys.clone();
        let r = self
            .write_exclusive(shard, partition, keys, |entries| {
                if let Some(e) = entries.get_mut(&g) {
                    for k in &doomed {
                        if let Key::Offset {
                            topic, partition, ..
                        } = k
                        {
                            e.offsets.remove(&(topic.clone(), *partition));
                        }
                    }
                }
            })
            .await;
        match r {
            Ok(()) => GroupResult::OffsetDelete(errors::NONE, codes),
            Err(code) => GroupResult::OffsetDelete(code, codes),
        }
    }

    /// Drops every group's offsets of a deleted topic.
    pub(super) async fn drop_topic(self: &Rc<Self>, shard: &Rc<Shard>, topic: &str) {
        let mut by_partition: HashMap<i32, Vec<Key>> = HashMap::new();
        for (gid, e) in self.entries.borrow().iter() {
            let keys = tombstones_of(gid, e, |t| t == topic);
            if !keys.is_empty() {
                by_partition.entry(e.partition).or_default().extend(keys);
            }
        }
        for (partition, keys) in by_partition {
            let t = topic.to_string();
            let n = keys.len();
            let r = self
                .write_exclusive(shard, partition, keys, |entries| {
                    for e in entries.values_mut() {
                        e.offsets.retain(|(tt, _), _| *tt != t);
                    }
                })
                .await;
            match r {
                Ok(()) => info!(
                    shard = shard.id,
                    topic,
                    offsets = n,
                    "dropped committed offsets of deleted topic"
                ),
                Err(code) => warn!(
                    shard = shard.id,
                    topic, %code, "could not drop offsets of deleted topic"
                ),
            }
        }
    }

    /// Expires the offsets of groups that have been empty for
    /// offsets.retention.minutes (of standalone committers: since their
    /// last commit), and forgets groups with nothing left.
    pub(super) async fn expire_offsets(self: &Rc<Self>, shard: &Rc<Shard>) {
        let now = now();
        let retention_ms = self.settings.offsets_retention.as_millis() as i64;
        let mut by_partition: HashMap<i32, Vec<(String, Vec<Key>)>> = HashMap::new();
        for (gid, e) in self.entries.borrow().iter() {
            if e.group.state != GroupState::Empty {
                continue;
            }
            let since = e
                .group
                .protocol_type
                .as_ref()
                .map(|_| e.group.state_since_ms);
            let mut keys: Vec<Key> = e
                .offsets
                .iter()
                .filter(|(_, c)| {
                    let base = since.unwrap_or(0).max(c.value.commit_timestamp_ms);
                    now.wall_ms - base >= retention_ms
                })
                .map(|((t, p), _)| Key::Offset {
                    group: gid.clone(),
                    topic: t.clone(),
                    partition: *p,
                })
                .collect();
            let all_go = keys.len() == e.offsets.len();
            if all_go && e.group.members.is_empty() {
                keys.push(Key::Group { group: gid.clone() });
            }
            if !keys.is_empty() {
                by_partition
                    .entry(e.partition)
                    .or_default()
                    .push((gid.clone(), keys));
            }
        }
        for (partition, groups) in by_partition {
            let keys: Vec<Key> = groups.iter().flat_map(|(_, k)| k.clone()).collect();
            let n = keys.len();
            let r = self
                .write_exclusive(shard, partition, keys, |entries| {
                    for (gid, ks) in &groups {
                        let Some(e) = entries.get_mut(gid) else {
                            continue;
                        };
                        for k in ks {
                            if let Key::Offset {
                                topic, partition, ..
                            } = k
                            {
                                e.offsets.remove(&(topic.clone(), *partition));
                            }
                        }
                        if e.removable() {
                            entries.remove(gid);
                        }
                    }
                })
                .await;
            match r {
                Ok(()) => debug!(
                    shard = shard.id,
                    partition,
                    records = n,
                    "expired committed offsets"
                ),
                Err(code) => warn!(shard = shard.id, partition, %code, "offset expiry failed"),
            }
        }
    }
}

/// Tombstones for a group's offsets of the topics `which` picks.
pub(super) fn tombstones_of(group: &str, e: &Entry, which: impl Fn(&str) -> bool) -> Vec<Key> {
    e.offsets
        .keys()
        .filter(|(t, _)| which(t))
        .map(|(t, p)| Key::Offset {
            group: group.to_string(),
            topic: t.clone(),
            partition: *p,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::group_coordinator::group::{GroupLimits, Now};

    #[test]
    fn tombstones_name_the_picked_topics() {
        let t = Instant::now();
        let limits = GroupLimits {
            initial_rebalance_delay: Duration::ZERO,
            max_size: 10,
        };
        let mut e = Entry {
            group: Group::new("g".into(), limits, Now { at: t, wall_ms: 0 }),
            partition: 0,
            offsets: HashMap::new(),
        };
        for (topic, p) in [("a", 0), ("a", 1), ("b", 0)] {
            e.offsets.insert(
                (topic.to_string(), p),
                Committed {
                    value: OffsetValue {
                        offset: 1,
                        leader_epoch: -1,
                        metadata: String::new(),
                        commit_timestamp_ms: 0,
                    },
                    record_offset: 0,
                },
            );
        }
        let some = tombstones_of("g", &e, |t| t == "a");
        assert_eq!(some.len(), 2);
        assert!(some
            .iter()
            .all(|k| matches!(k, Key::Offset { topic, .. } if topic == "a")));
        assert_eq!(tombstones_of("g", &e, |_| true).len(), 3);
    }
}
