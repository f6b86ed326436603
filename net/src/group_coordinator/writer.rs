//! The offsets-log writer of each offsets partition this shard owns: a
//! fair gate for its writers (commits share it; rewrites, deletions and
//! expiry take it whole), appends, and the rewrite of the live state that
//! stands in for compaction.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::BytesMut;
use glommio::sync::{Permit, Semaphore};
use spindle_codec::records::BatchWriter;
use spindle_engine::PartitionLog;
use tracing::{info, warn};

use super::records::{self, Key};
use super::{now, Entry, GroupCoordinator, OFFSETS_TOPIC};
use crate::constants::{OFFSETS_LOAD_READ_BYTES, OFFSETS_WRITES_IN_FLIGHT};
use crate::errors::{self, ErrorCode};
use crate::shard::Shard;

/// The writer of one offsets partition owned here: its write gate, and
/// the log's growth since the live state was last rewritten.
pub(super) struct PartitionWriter {
    gate: Rc<Semaphore>,
    bytes_since_rewrite: Cell<u64>,
    live_bytes: Cell<u64>,
    rewriting: Cell<bool>,
}

impl PartitionWriter {
    /// `live_bytes`: the live state's size, as the replay found it.
    pub(super) fn new(live_bytes: u64) -> PartitionWriter {
        PartitionWriter {
            gate: Rc::new(Semaphore::new(OFFSETS_WRITES_IN_FLIGHT)),
            bytes_since_rewrite: Cell::new(0),
            live_bytes: Cell::new(live_bytes),
            rewriting: Cell::new(false),
        }
    }

    /// A place in the gate beside other commits.
    pub(super) async fn shared(&self) -> Result<Permit<'_>, ErrorCode> {
        self.gate
            .acquire_permit(1)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)
    }

    /// The whole gate: no other write until the permit drops.
    pub(super) async fn exclusive(&self) -> Result<Permit<'_>, ErrorCode> {
        self.gate
            .acquire_permit(OFFSETS_WRITES_IN_FLIGHT)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)
    }

    pub(super) fn set_live_bytes(&self, n: u64) {
        self.live_bytes.set(n);
    }
}

impl GroupCoordinator {
    pub(super) fn writer(&self, partition: i32) -> Option<Rc<PartitionWriter>> {
        self.writers.borrow().get(&partition).cloned()
    }

    pub(super) async fn writer_and_log(
        &self,
        shard: &Rc<Shard>,
        partition: i32,
    ) -> Result<(Rc<PartitionWriter>, Rc<PartitionLog>), ErrorCode> {
        let writer = self
            .writer(partition)
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        let log = shard
            .log(OFFSETS_TOPIC, partition)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        Ok((writer, log))
    }

    /// Appends records (durable under the flush mode when it returns) and
    /// returns the first offset; may start a rewrite of the live state.
    pub(super) async fn append(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        writer: &Rc<PartitionWriter>,
        log: &Rc<PartitionLog>,
        batch: BytesMut,
    ) -> Result<i64, ErrorCode> {
        let len = batch.len() as u64;
        match log.append(batch).await {
            Ok(info) => {
                writer
                    .bytes_since_rewrite
                    .set(writer.bytes_since_rewrite.get() + len);
                self.maybe_rewrite(shard, writer);
                Ok(info.base_offset)
            }
            Err(e) => {
                warn!(shard = shard.id, error = %e, "write to the offsets log failed");
                Err(errors::offsets_append_error_code(&e))
            }
        }
    }

    /// Appends tombstones for `keys` with the partition's gate held whole,
    /// then runs `apply` (which removes them from memory) before anyone
    /// else writes.
    pub(super) async fn write_exclusive(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        keys: Vec<Key>,
        apply: impl FnOnce(&mut HashMap<String, Entry>),
    ) -> Result<(), ErrorCode> {
        let (writer, log) = self.writer_and_log(shard, partition).await?;
        let _permit = writer.exclusive().await?;
        if !keys.is_empty() {
            let mut w = BatchWriter::new(now().wall_ms);
            for k in &keys {
                w.push(&records::encode_key(k), None);
            }
            self.append(shard, &writer, &log, w.finish()).await?;
        }
        apply(&mut self.entries.borrow_mut());
        Ok(())
    }

    /// Rewrites the live state of a partition once the log has grown well
    /// past it, then deletes the segments wholly below the rewrite.
    pub(super) fn maybe_rewrite(self: &Rc<Self>, shard: &Rc<Shard>, writer: &Rc<PartitionWriter>) {
        let grown = writer.bytes_since_rewrite.get();
        if writer.rewriting.get()
            || grown < self.settings.rewrite_bytes.max(2 * writer.live_bytes.get())
        {
            return;
        }
        let Some(partition) = self
            .writers
            .borrow()
            .iter()
            .find(|(_, s)| Rc::ptr_eq(s, writer))
            .map(|(p, _)| *p)
        else {
            return;
        };
        writer.rewriting.set(true);
        let (me, shard, writer) = (self.clone(), shard.clone(), writer.clone());
        glommio::spawn_local(async move {
            if let Err(code) = me.rewrite(&shard, partition, &writer).await {
                warn!(
                    shard = shard.id,
                    partition, %code, "rewrite of the offsets log failed"
                );
            }
            writer.rewriting.set(false);
        })
        .detach();
    }

    pub(super) async fn rewrite(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: i32,
        writer: &Rc<PartitionWriter>,
    ) -> Result<(), ErrorCode> {
        let log = shard
            .log(OFFSETS_TOPIC, partition)
            .await
            .map_err(|_| errors::COORDINATOR_NOT_AVAILABLE)?;
        let _permit = writer.exclusive().await?;
        let batches = self.live_state(partition);
        let live = batches.len() as u64;
        let below = if batches.is_empty() {
            log.log_end_offset()
        } else {
            log.append(batches)
                .await
                .map_err(|e| errors::offsets_append_error_code(&e))?
                .base_offset
        };
        let deleted = log
            .delete_segments_below(below)
            .await
            .map_err(|e| errors::offsets_append_error_code(&e))?;
        writer.bytes_since_rewrite.set(0);
        writer.live_bytes.set(live);
        info!(
            shard = shard.id,
            partition,
            live_bytes = live,
            segments_deleted = deleted,
            "rewrote the live state of an offsets partition"
        );
        Ok(())
    }

    /// Every live record of a partition, as concatenated batches.
    pub(super) fn live_state(&self, partition: i32) -> BytesMut {
        let mut out = BytesMut::new();
        let mut w = BatchWriter::new(now().wall_ms);
        let flush = |w: &mut BatchWriter, out: &mut BytesMut| {
            if !w.is_empty() {
                let full = std::mem::replace(w, BatchWriter::new(now().wall_ms));
                out.extend_from_slice(&full.finish());
            }
        };
        for (gid, e) in self.entries.borrow().iter() {
            if e.partition != partition {
                continue;
            }
            if e.group.protocol_type.is_some() {
                let k = records::encode_key(&Key::Group { group: gid.clone() });
                w.push(&k, Some(&records::encode_group(&e.group.value())));
            }
            for ((t, p), c) in &e.offsets {
                let k = records::encode_key(&Key::Offset {
                    group: gid.clone(),
                    topic: t.clone(),
                    partition: *p,
                });
                w.push(&k, Some(&records::encode_offset(&c.value)));
                if w.len() >= OFFSETS_LOAD_READ_BYTES as usize / 2 {
                    flush(&mut w, &mut out);
                }
            }
        }
        flush(&mut w, &mut out);
        out
    }
}
