//! Start: every offsets partition this shard owns is read from its log
//! start to its high watermark, and the groups and committed offsets it
//! holds are rebuilt (members come back with fresh sessions).

use std::collections::HashMap;
use std::rc::Rc;

use spindle_codec::records::for_each_record;
use spindle_engine::{PartitionLog, ReadChunk};
use tracing::{info, warn};

use super::group::Group;
use super::offsets::Committed;
use super::records::{self, GroupValue, Key};
use super::writer::PartitionWriter;
use super::{now, Entry, GroupCoordinator, OFFSETS_TOPIC};
use crate::constants::OFFSETS_LOAD_READ_BYTES;
use crate::shard::Shard;

impl GroupCoordinator {
    /// Replays every offsets partition this shard owns, then serves.
    pub async fn load(self: &Rc<Self>, shard: &Rc<Shard>) {
        let snap = shard.snapshot();
        let owned: Vec<i32> = snap
            .topic(OFFSETS_TOPIC)
            .map(|t| {
                t.owners
                    .iter()
                    .enumerate()
                    .filter(|(_, &o)| o == shard.id)
                    .map(|(p, _)| p as i32)
                    .collect()
            })
            .unwrap_or_default();
        for p in owned {
            let writer = Rc::new(PartitionWriter::new(0));
            self.writers.borrow_mut().insert(p, writer.clone());
            match shard.log(OFFSETS_TOPIC, p).await {
                Ok(log) => {
                    if let Err(e) = self.replay(p, &log, &writer).await {
                        warn!(shard = shard.id, partition = p, error = %e, "offsets replay stopped early");
                    }
                }
                Err(code) => {
                    warn!(
                        shard = shard.id,
                        partition = p,
                        %code,
                        "offsets partition did not open"
                    )
                }
            }
        }
        let groups = self.entries.borrow().len();
        if groups > 0 {
            info!(shard = shard.id, groups, "consumer groups loaded");
        }
        self.loaded.set(true);
    }

    async fn replay(
        &self,
        partition: i32,
        log: &PartitionLog,
        writer: &PartitionWriter,
    ) -> Result<(), String> {
        let mut next = log.log_start_offset();
        let hw = log.high_watermark();
        let mut bytes = 0u64;
        let mut groups: HashMap<String, (GroupValue, i64)> = HashMap::new();
        let mut removed_groups: HashMap<String, i64> = HashMap::new();
        let mut offsets: HashMap<(String, String, i32), Committed> = HashMap::new();
        while next < hw {
            let r = log
                .read_in_memory(next, OFFSETS_LOAD_READ_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            if r.chunks.is_empty() {
                break;
            }
            let before = next;
            for c in &r.chunks {
                let ReadChunk::Memory(b) = c else {
                    return Err("file range from an in-memory read".into());
                };
                bytes += b.len() as u64;
                for_each_record(b, |rec| {
                    next = next.max(rec.offset + 1);
                    apply_record(rec, &mut groups, &mut removed_groups, &mut offsets);
                })
                .map_err(|e| e.to_string())?;
            }
            if next <= before {
                return Err(format!("no progress reading at offset {before}"));
            }
        }
        writer.set_live_bytes(bytes);
        let now = now();
        let limits = self.settings.limits;
        let mut entries = self.entries.borrow_mut();
        for (id, (value, _)) in groups {
            let group = Group::restore(id.clone(), value, limits, now);
            entries.insert(
                id,
                Entry {
                    group,
                    partition,
                    offsets: HashMap::new(),
                },
            );
        }
        for ((gid, topic, p), c) in offsets {
            let e = entries.entry(gid.clone()).or_insert_with(|| Entry {
                group: Group::new(gid.clone(), limits, now),
                partition,
                offsets: HashMap::new(),
            });
            e.offsets.insert((topic, p), c);
        }
        Ok(())
    }
}

/// One record of the offsets log, applied while replaying.
fn apply_record(
    rec: spindle_codec::records::Record<'_>,
    groups: &mut HashMap<String, (GroupValue, i64)>,
    removed: &mut HashMap<String, i64>,
    offsets: &mut HashMap<(String, String, i32), Committed>,
) {
    let Some(kb) = rec.key else { return };
    let key = match records::decode_key(kb) {
        Ok(Some(k)) => k,
        Ok(None) => return,
        Err(e) => {
            warn!(offset = rec.offset, error = %e, "undecodable key in the offsets log");
            return;
        }
    };
    match (key, rec.value) {
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            None,
        ) => {
            offsets.remove(&(group, topic, partition));
        }
        (
            Key::Offset {
                group,
                topic,
                partition,
            },
            Some(v),
        ) => match records::decode_offset(v) {
            Ok(value) => {
                offsets.insert(
                    (group, topic, partition),
                    Committed {
                        value,
                        record_offset: rec.offset,
                    },
                );
            }
            Err(e) => warn!(offset = rec.offset, error = %e, "undecodable offset commit"),
        },
        (Key::Group { group }, None) => {
            groups.remove(&group);
            removed.insert(group, rec.offset);
        }
        (Key::Group { group }, Some(v)) => match records::decode_group(v) {
            Ok(value) => {
                removed.remove(&group);
                groups.insert(group, (value, rec.offset));
            }
            Err(e) => warn!(offset = rec.offset, error = %e, "undecodable group metadata"),
        },
    }
}
