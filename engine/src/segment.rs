//! A segment: one `.log` file of whole batches with its `.index` and
//! `.timeindex` (named as `layout.rs` says), and its in-memory state. Also
//! the batch scanner used by reads and recovery.

use crate::batch::{BatchHeader, BATCH_HEADER_LEN};
use crate::constants::READ_CHUNK_BYTES;
use crate::join::join_all;
use crate::layout::{segment_path, LOG_SUFFIX};
use crate::segment_appender::{align_down, align_up, SegmentAppender};
use crate::segment_index::{OffsetIndex, TimeIndex};
use crate::storage::{Storage, StorageFile};
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

/// Wall-clock milliseconds, as batch timestamps and segment ages count them.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Mutable state of a segment, borrowed briefly and never across an await.
pub(crate) struct SegmentState<S: Storage> {
    pub file: Option<Rc<S::File>>,
    pub reader: Option<Arc<std::fs::File>>,
    /// Present while the segment still has bytes to write (active, or
    /// sealed but not yet finalized).
    pub appender: Option<SegmentAppender<S::Buf>>,
    /// Logical bytes appended.
    pub size: u64,
    /// Logical bytes whose writes completed.
    pub written: u64,
    /// Writes completed but not yet fdatasynced.
    pub dirty: bool,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index: u64,
    pub created_ms: i64,
    /// File length after preallocation.
    pub allocated: u64,
    /// Blocks below this are written (data or zeros): appends there are
    /// overwrites.
    pub zero_end: u64,
    /// End of the zero fill in flight, 0 if none.
    pub zero_target: u64,
    /// No more appends go here.
    pub sealed: bool,
    /// Sealed, written, truncated, synced, indexes on disk.
    pub finalized: bool,
    /// Producer snapshot as of this segment's end, written with the
    /// checkpoint once the segment is finalized.
    pub snapshot: Option<Vec<u8>>,
}

pub(crate) struct Segment<S: Storage> {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub st: RefCell<SegmentState<S>>,
}

impl<S: Storage> Segment<S> {
    pub fn new(dir: &Path, base_offset: i64, now_ms: i64) -> Segment<S> {
        Segment {
            base_offset,
            log_path: segment_path(dir, base_offset, LOG_SUFFIX),
            st: RefCell::new(SegmentState {
                file: None,
                reader: None,
                appender: None,
                size: 0,
                written: 0,
                dirty: false,
                next_offset: base_offset,
                max_timestamp: -1,
                offset_of_max_timestamp: base_offset,
                index: OffsetIndex::default(),
                time_index: TimeIndex::default(),
                bytes_since_index: 0,
                created_ms: now_ms,
                allocated: 0,
                zero_end: 0,
                zero_target: 0,
                sealed: false,
                finalized: false,
                snapshot: None,
            }),
        }
    }

    pub fn path(&self, suffix: &str) -> PathBuf {
        self.log_path.with_extension(suffix.trim_start_matches('.'))
    }
}

impl<S: Storage> SegmentState<S> {
    /// Accounts for a batch (offsets assigned) appended at `pos`; keeps the
    /// sparse indexes the way Kafka does.
    pub fn on_batch(
        &mut self,
        base_offset: i64,
        h: &BatchHeader,
        pos: u64,
        index_interval_bytes: u32,
    ) {
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.bytes_since_index > index_interval_bytes as u64 {
            let rel = (h.last_offset() - base_offset) as u32;
            self.index.push(rel, pos as u32);
            let ts_rel = (self.offset_of_max_timestamp - base_offset) as u32;
            self.time_index.push(self.max_timestamp, ts_rel);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_len();
        self.next_offset = h.last_offset() + 1;
        self.size = pos + h.total_len();
    }
}

/// Bytes at `position` are not a valid next batch.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    Invalid { position: u64, reason: String },
}

/// Bytes of a window: as read, or gathered from concurrent reads.
pub(crate) enum Window<B> {
    Io(B),
    Owned(Vec<u8>),
}

impl<B: std::ops::Deref<Target = [u8]>> std::ops::Deref for Window<B> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Window::Io(b) => b,
            Window::Owned(v) => v,
        }
    }
}

/// Reads `len` bytes at `pos` as concurrent reads of `chunk` bytes:
/// one large read leaves the device queue shallow (measured here: about
/// half of fio's queue-depth-32 sequential read). Short at end of file.
async fn read_gathered<F: StorageFile>(
    file: &F,
    pos: u64,
    len: usize,
    chunk: usize,
) -> io::Result<Window<F::ReadBuf>> {
    let reads = (0..len.div_ceil(chunk)).map(|i| {
        let at = i * chunk;
        file.read_at(pos + at as u64, chunk.min(len - at))
    });
    let results = join_all(reads).await;
    let mut out = Vec::with_capacity(len);
    for r in results {
        let b = r?;
        out.extend_from_slice(&b);
        if b.len() < chunk {
            break;
        }
    }
    Ok(Window::Owned(out))
}

type WindowResult<F> = io::Result<Window<<F as StorageFile>::ReadBuf>>;
type ReadFut<'a, F> = Pin<Box<dyn Future<Output = WindowResult<F>> + 'a>>;
type ReadAhead<'a, F> = (u64, ReadFut<'a, F>, Option<WindowResult<F>>);

/// Where the bytes asked of [`Scanner::bytes`] are.
enum Source {
    Window,
    OneOff,
}

/// Walks batches of a segment file forward, reading in windows. With
/// read-ahead, the next window is read while the current one is checked.
pub(crate) struct Scanner<'a, F: StorageFile> {
    file: &'a F,
    pub pos: u64,
    limit: u64,
    window_bytes: usize,
    window_start: u64,
    window: Option<Window<F::ReadBuf>>,
    readahead: bool,
    /// The next window: start, read in flight, its result if done.
    ahead: Option<ReadAhead<'a, F>>,
    /// A batch straddling two windows, read on its own.
    oneoff: Option<(u64, F::ReadBuf)>,
    expected_offset: Option<i64>,
    pub bytes_read: u64,
}

impl<'a, F: StorageFile> Scanner<'a, F> {
    pub fn new(
        file: &'a F,
        pos: u64,
        limit: u64,
        window_bytes: usize,
        expected_offset: Option<i64>,
    ) -> Self {
        Scanner {
            file,
            pos,
            limit,
            window_bytes,
            window_start: 0,
            window: None,
            readahead: false,
            ahead: None,
            oneoff: None,
            expected_offset,
            bytes_read: 0,
        }
    }

    /// Reads the next window while the current one is being checked.
    pub fn with_readahead(mut self) -> Self {
        self.readahead = true;
        self
    }

    /// Continues at `pos`, a batch boundary known from the index.
    pub fn jump(&mut self, pos: u64) {
        self.pos = pos;
        self.expected_offset = None;
    }

    /// Size of the concurrent reads a window is split into.
    fn chunk(&self) -> usize {
        READ_CHUNK_BYTES
            .min(self.window_bytes / 4)
            .max(crate::constants::ALIGN as usize)
    }

    fn covers(start: u64, buf: &[u8], pos: u64, len: usize) -> bool {
        pos >= start && pos + len as u64 <= start + buf.len() as u64
    }

    async fn bytes(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let file: &'a F = self.file;
        let source = match &self.window {
            Some(w) if Self::covers(self.window_start, w, pos, len) => Source::Window,
            Some(w)
                if self.ahead.is_some()
                    && pos >= self.window_start
                    && pos < self.window_start + w.len() as u64 =>
            {
                // Straddles the window end while the next window is in
                // flight: read just this range.
                let start = align_down(pos);
                let want = align_up(pos + len as u64 - start)
                    .min(align_up(self.limit.saturating_sub(start)));
                let b = file.read_at(start, want as usize).await?;
                self.bytes_read += len as u64;
                if !Self::covers(start, &b, pos, len) {
                    return Ok(None);
                }
                self.oneoff = Some((start, b));
                Source::OneOff
            }
            _ => {
                let mut next = None;
                if let Some((start, fut, done)) = self.ahead.take() {
                    let b = match done {
                        Some(r) => r?,
                        None => fut.await?,
                    };
                    if Self::covers(start, &b, pos, len) {
                        next = Some((start, b));
                    }
                }
                let (start, w) = match next {
                    Some(n) => n,
                    None => {
                        let start = align_down(pos);
                        let want =
                            align_up((pos - start) + len as u64).max(self.window_bytes as u64);
                        let want = want.min(align_up(self.limit.saturating_sub(start)));
                        {
                            let w = if self.readahead {
                                read_gathered(file, start, want as usize, self.chunk()).await?
                            } else {
                                Window::Io(file.read_at(start, want as usize).await?)
                            };
                            (start, w)
                        }
                    }
                };
                self.bytes_read += w.len() as u64;
                let end = start + w.len() as u64;
                let covered = Self::covers(start, &w, pos, len);
                self.window_start = start;
                self.window = Some(w);
                if self.readahead && end < self.limit && end % crate::constants::ALIGN == 0 {
                    let want = (self.window_bytes as u64).min(align_up(self.limit - end));
                    let mut fut: ReadFut<'a, F> =
                        Box::pin(read_gathered(file, end, want as usize, self.chunk()));
                    // Poll once so the read is submitted now.
                    let done = poll_fn(|cx| {
                        Poll::Ready(match fut.as_mut().poll(cx) {
                            Poll::Ready(r) => Some(r),
                            Poll::Pending => None,
                        })
                    })
                    .await;
                    self.ahead = Some((end, fut, done));
                }
                if !covered {
                    return Ok(None);
                }
                Source::Window
            }
        };
        let (start, buf) = match source {
            Source::Window => (self.window_start, self.window.as_deref().unwrap_or(&[])),
            Source::OneOff => match &self.oneoff {
                Some((s, b)) => (*s, &b[..]),
                None => (pos, &[][..]),
            },
        };
        let at = (pos - start) as usize;
        Ok(buf.get(at..at + len))
    }

    /// The next batch: `Ok(Ok(Some((pos, header))))`, `Ok(Ok(None))` at the
    /// limit, `Ok(Err(end))` on bytes that are not a valid next batch. With
    /// `verify` the whole batch is read and its CRC checked.
    pub async fn next(
        &mut self,
        verify: bool,
    ) -> io::Result<Result<Option<(u64, BatchHeader)>, ScanEnd>> {
        let pos = self.pos;
        if pos >= self.limit {
            return Ok(Ok(None));
        }
        let invalid = |reason: String| {
            Ok(Err(ScanEnd::Invalid {
                position: pos,
                reason,
            }))
        };
        if self.limit - pos < BATCH_HEADER_LEN as u64 {
            return invalid(format!("{} trailing bytes", self.limit - pos));
        }
        let Some(hb) = self.bytes(pos, BATCH_HEADER_LEN).await? else {
            return invalid("file shorter than expected".into());
        };
        let h = match BatchHeader::parse(hb) {
            Ok(h) => h,
            Err(e) => return invalid(e.to_string()),
        };
        let len = h.total_len();
        if pos + len > self.limit {
            return invalid(format!(
                "batch of {len} bytes overruns the segment end {}",
                self.limit
            ));
        }
        if let Some(exp) = self.expected_offset {
            if h.base_offset != exp {
                return invalid(format!(
                    "base offset {} where {exp} was expected",
                    h.base_offset
                ));
            }
        }
        if h.last_offset_delta < 0 || h.records_count != h.last_offset_delta + 1 {
            return invalid(format!(
                "record count {} vs lastOffsetDelta {}",
                h.records_count, h.last_offset_delta
            ));
        }
        if verify {
            let Some(b) = self.bytes(pos, len as usize).await? else {
                return invalid("file shorter than expected".into());
            };
            if let Err(e) = h.validate(b) {
                return invalid(e.to_string());
            }
        }
        self.pos = pos + len;
        self.expected_offset = Some(h.last_offset() + 1);
        Ok(Ok(Some((pos, h))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of every size relative to the window, read with and without
    /// read-ahead, straddling window ends.
    #[test]
    fn scanner_finds_every_batch_across_windows() {
        use crate::batch::{build_test_batch, set_base_offset};
        use crate::storage::SimDisk;
        futures_lite::future::block_on(async {
            let disk = SimDisk::new();
            let s = disk.storage();
            let mut image = Vec::new();
            let mut next = 0i64;
            for i in 0..200usize {
                let mut b = build_test_batch(
                    1 + (i % 3) as i32,
                    i as i64,
                    &vec![i as u8; (i * 997) % 9000],
                );
                set_base_offset(&mut b, next);
                next += 1 + (i % 3) as i64;
                image.extend_from_slice(&b);
            }
            let path = Path::new("/d/x.log");
            disk.write_file_durable(path, image.clone());
            let f = s.open(path, false).await.unwrap();
            for (window, readahead) in [(4096, false), (4096, true), (8192, true), (1 << 20, true)]
            {
                let mut sc = Scanner::new(&f, 0, image.len() as u64, window, Some(0));
                if readahead {
                    sc = sc.with_readahead();
                }
                let mut count = 0;
                while let Some((_, h)) = sc.next(true).await.unwrap().unwrap() {
                    assert_eq!(h.records_count, 1 + (count % 3));
                    count += 1;
                }
                assert_eq!(count, 200, "window {window} readahead {readahead}");
            }
        });
    }
}
