//! Reads: from the shard's batch cache, or as file ranges of a segment for
//! sendfile (in memory for the broker's own readers), below the high
//! watermark or a bound the caller gives (a replicated high watermark for
//! consumers, the log end for followers); and timestamp lookups.

use super::PartitionLog;
use crate::batch::BatchHeader;
use crate::constants::READ_SCAN_WINDOW_BYTES;
use crate::error::{AppendError, ReadError};
use crate::segment::{ScanEnd, Scanner, Segment};
use crate::storage::{Storage, StorageFile};
use bytes::Bytes;
use std::rc::Rc;
use std::sync::Arc;

/// Cold data: a range of a segment file to send with sendfile.
#[derive(Debug, Clone)]
pub struct FileRange {
    /// Opened O_RDONLY, buffered (reads go through the page cache).
    pub file: Arc<std::fs::File>,
    pub position: u64,
    pub len: u32,
}

#[derive(Debug, Clone)]
pub enum ReadChunk {
    /// From the tail cache or memory: send as is.
    Memory(Bytes),
    /// From a segment file.
    File(FileRange),
}

impl ReadChunk {
    pub fn len(&self) -> u64 {
        match self {
            ReadChunk::Memory(b) => b.len() as u64,
            ReadChunk::File(r) => r.len as u64,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches in offset order; empty at the high watermark.
    pub chunks: Vec<ReadChunk>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// How far a read goes.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// Below the high watermark; offsets past it are out of range.
    HighWatermark,
    /// Below this offset (capped at the log end); offsets up to the log
    /// end are in range.
    Upto(i64),
}

impl<S: Storage> PartitionLog<S> {
    /// Waits until the segment's appended bytes are all in its file (only
    /// needed when a read may see unflushed data: up to a bound past the
    /// durable offset, or not under `flush=batch`).
    async fn ensure_written(&self, seg: &Rc<Segment<S>>, upto: i64) -> Result<(), ReadError> {
        {
            // Durable implies written: readers below the durable offset
            // (all of them under flush=batch but followers) never wait.
            let st = self.st.borrow();
            if upto <= st.durable_offset {
                return Ok(());
            }
        }
        let need = seg.st.borrow().size;
        let s = seg.clone();
        self.wait_round(false, true, move |_| s.st.borrow().written >= need)
            .await
            .map_err(|e| match e {
                AppendError::Io(e) => ReadError::Io(e),
                _ => ReadError::Poisoned,
            })
    }

    /// Kafka fetch semantics: whole batches from the one containing
    /// `offset`, up to `max_bytes` but at least one, below the high watermark.
    pub async fn read(&self, offset: i64, max_bytes: u32) -> Result<ReadResult, ReadError> {
        self.read_with(offset, max_bytes, Bound::HighWatermark, false)
            .await
    }

    /// [`PartitionLog::read`] below `upto` instead of the high watermark:
    /// whole batches that end before `upto` (a batch that ends at or past
    /// it is not returned, never split). `upto` past the log end is the
    /// log end: followers read up to there, before it is durable.
    /// Offsets up to the log end are in range; from `upto` on the result
    /// is empty.
    pub async fn read_upto(
        &self,
        offset: i64,
        max_bytes: u32,
        upto: i64,
    ) -> Result<ReadResult, ReadError> {
        self.read_with(offset, max_bytes, Bound::Upto(upto), false)
            .await
    }

    /// [`PartitionLog::read`], but cold data is read into memory through
    /// the storage seam (an async read on the shard) instead of being
    /// returned as a file range: for the broker's own readers of internal
    /// topics, which parse what they read.
    pub async fn read_in_memory(
        &self,
        offset: i64,
        max_bytes: u32,
    ) -> Result<ReadResult, ReadError> {
        self.read_with(offset, max_bytes, Bound::HighWatermark, true)
            .await
    }

    /// [`PartitionLog::read_in_memory`] below `upto`, as
    /// [`PartitionLog::read_upto`].
    pub async fn read_in_memory_upto(
        &self,
        offset: i64,
        max_bytes: u32,
        upto: i64,
    ) -> Result<ReadResult, ReadError> {
        self.read_with(offset, max_bytes, Bound::Upto(upto), true)
            .await
    }

    async fn read_with(
        &self,
        offset: i64,
        max_bytes: u32,
        bound: Bound,
        in_memory: bool,
    ) -> Result<ReadResult, ReadError> {
        let (lso, hw, range_end, upto, seg) = {
            let st = self.st.borrow();
            if st.closed {
                return Err(ReadError::Closed);
            }
            let seg = st
                .segments
                .iter()
                .rev()
                .find(|s| s.base_offset <= offset)
                .cloned();
            let (range_end, upto) = match bound {
                Bound::HighWatermark => (st.high_watermark, st.high_watermark),
                Bound::Upto(u) => (st.next_offset, u.min(st.next_offset)),
            };
            (st.log_start_offset, st.high_watermark, range_end, upto, seg)
        };
        if offset < lso || offset > range_end {
            return Err(ReadError::OffsetOutOfRange {
                log_start_offset: lso,
                high_watermark: hw,
            });
        }
        let mut rr = ReadResult {
            chunks: Vec::new(),
            high_watermark: hw,
            log_start_offset: lso,
        };
        if offset >= upto {
            return Ok(rr);
        }
        if let Some(v) = self.cache.read(self.id, offset, upto, max_bytes) {
            rr.chunks = v.into_iter().map(ReadChunk::Memory).collect();
            return Ok(rr);
        }
        let Some(seg) = seg else {
            return Err(ReadError::OffsetOutOfRange {
                log_start_offset: lso,
                high_watermark: hw,
            });
        };
        self.ensure_written(&seg, upto).await?;
        let (file, start, limit) = {
            let ss = seg.st.borrow();
            let rel = (offset - seg.base_offset).clamp(0, u32::MAX as i64) as u32;
            (
                ss.file.clone(),
                ss.index.lookup(rel) as u64,
                ss.written.min(ss.size),
            )
        };
        let Some(file) = file else { return Ok(rr) };
        let mut sc = Scanner::new(&*file, start, limit, READ_SCAN_WINDOW_BYTES, None);
        let mut range: Option<(u64, u64)> = None;
        loop {
            let Some((pos, h)) = next_batch(&mut sc, &seg).await? else {
                break;
            };
            if h.last_offset() < offset {
                continue;
            }
            if h.last_offset() >= upto {
                break;
            }
            let end = pos + h.total_len();
            match range {
                None => {
                    range = Some((pos, end));
                    // Skip ahead with the index: batches before an indexed
                    // position are whole, so only the last stretch is scanned.
                    let jump = seg
                        .st
                        .borrow()
                        .index
                        .last_at_or_before_position(pos + max_bytes as u64);
                    if let Some((rel, p)) = jump {
                        if p as u64 > end && seg.base_offset + (rel as i64) < upto {
                            range = Some((pos, p as u64));
                            sc.jump(p as u64);
                        }
                    }
                }
                Some((s, _)) if end - s > max_bytes as u64 => break,
                Some((s, _)) => range = Some((s, end)),
            }
        }
        if let Some((s, e)) = range {
            rr.chunks
                .push(self.chunk(&seg, &file, s, e, in_memory).await?);
        }
        Ok(rr)
    }

    async fn chunk(
        &self,
        seg: &Segment<S>,
        file: &S::File,
        start: u64,
        end: u64,
        in_memory: bool,
    ) -> Result<ReadChunk, ReadError> {
        let cached = seg.st.borrow().reader.clone();
        let reader = match cached {
            _ if in_memory => None,
            Some(r) => Some(r),
            None => {
                let r = self.storage.reader(&seg.log_path)?;
                seg.st.borrow_mut().reader = r.clone();
                r
            }
        };
        let len = end - start;
        Ok(match reader {
            Some(file) => ReadChunk::File(FileRange {
                file,
                position: start,
                len: len as u32,
            }),
            None => {
                let b = file.read_at(start, len as usize).await?;
                if b.len() as u64 != len {
                    return Err(ReadError::Corrupt {
                        segment: seg.log_path.clone(),
                        position: start,
                        reason: "short read".into(),
                    });
                }
                ReadChunk::Memory(Bytes::copy_from_slice(&b))
            }
        })
    }

    /// The first batch whose maxTimestamp >= `timestamp_ms`, as (base
    /// offset, max timestamp), below the high watermark.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let (segs, hw) = {
            let st = self.st.borrow();
            if st.closed {
                return Err(ReadError::Closed);
            }
            (st.segments.clone(), st.high_watermark)
        };
        for seg in segs {
            let (max_ts, start) = {
                let ss = seg.st.borrow();
                let start = ss
                    .time_index
                    .lookup(timestamp_ms)
                    .map(|r| ss.index.lookup(r.saturating_add(1)))
                    .unwrap_or(0);
                (ss.max_timestamp, start as u64)
            };
            if seg.base_offset >= hw {
                break;
            }
            if max_ts < timestamp_ms {
                continue;
            }
            self.ensure_written(&seg, hw).await?;
            let (file, limit) = {
                let ss = seg.st.borrow();
                (ss.file.clone(), ss.written.min(ss.size))
            };
            let Some(file) = file else { continue };
            let mut sc = Scanner::new(&*file, start, limit, READ_SCAN_WINDOW_BYTES, None);
            loop {
                let Some((_, h)) = next_batch(&mut sc, &seg).await? else {
                    break;
                };
                if h.last_offset() >= hw {
                    return Ok(None);
                }
                if h.max_timestamp >= timestamp_ms {
                    return Ok(Some((h.base_offset, h.max_timestamp)));
                }
            }
        }
        Ok(None)
    }
}

/// The next batch of a read's scan; bytes that are not one are `Corrupt`
/// (the segment held a valid batch there when it was appended).
async fn next_batch<S: Storage>(
    sc: &mut Scanner<'_, S::File>,
    seg: &Segment<S>,
) -> Result<Option<(u64, BatchHeader)>, ReadError> {
    match sc.next(false).await? {
        Ok(b) => Ok(b),
        Err(ScanEnd::Invalid { position, reason }) => Err(ReadError::Corrupt {
            segment: seg.log_path.clone(),
            position,
            reason,
        }),
    }
}
