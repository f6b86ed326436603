//! The direct-I/O appender of one segment: batches are copied into aligned
//! write buffers, full buffers are written behind the producer, and the
//! partial last block is rewritten (padded with zeros) each time a flush
//! needs it on disk, until the block fills.
//!
//! What is durable when:
//! - `append` only copies into memory: nothing is on disk, nothing durable.
//! - A write round (`PartitionLog`'s writer) issues the buffers taken with
//!   [`SegmentAppender::take`]; once those writes complete the bytes are in
//!   the file but may sit in the device cache: readable, not durable.
//! - Bytes become durable only when an fdatasync of the segment file that
//!   started after their write completed has returned. Under `flush=batch`
//!   every append waits for exactly that, so an acknowledged batch survives
//!   a crash or power loss; `flush=interval` and `flush=never` acknowledge
//!   after the copy and make no such promise.
//! - A sealed segment is finalized (all written, truncated to its logical
//!   size, fdatasynced, indexes written) before any byte of the next segment
//!   is written, so after a crash every segment but the last is whole.
//! - The file may be longer than the log (preallocation, zero fill ahead
//!   under `flush=batch`, block padding): the logical end is tracked here
//!   and recovered by scanning, never taken from the file size.

use crate::config::LogConfig;
use crate::constants::{ALIGN, WRITE_BUF_BYTES};
use crate::storage::IoBuf;
use std::collections::VecDeque;
use std::rc::Rc;

/// One aligned write: `buf` goes at `pos`; once it and every earlier write of
/// the segment completed, the segment's first `logical_end` bytes are in the file.
pub(crate) struct WriteOp<B> {
    pub pos: u64,
    pub buf: Rc<B>,
    pub logical_end: u64,
}

pub(crate) fn align_down(v: u64) -> u64 {
    v & !(ALIGN - 1)
}

pub(crate) fn align_up(v: u64) -> u64 {
    align_down(v + ALIGN - 1)
}

pub(crate) struct SegmentAppender<B: IoBuf> {
    buf_bytes: usize,
    cur: Option<B>,
    /// Aligned file position of `cur[0]` (or of the carried block).
    cur_pos: u64,
    cur_len: usize,
    /// Bytes of the partial last block already written once, to be copied
    /// into the next buffer so that the block is rewritten whole.
    carry: Vec<u8>,
    ready: VecDeque<WriteOp<B>>,
    logical_end: u64,
    /// Full buffers made by `append` so far.
    filled: u64,
}

/// Size of a log's write buffers: [`WRITE_BUF_BYTES`], or the segment
/// size if smaller.
pub(crate) fn write_buf_bytes(cfg: &LogConfig) -> usize {
    (align_up(cfg.segment_bytes_max).clamp(ALIGN, WRITE_BUF_BYTES as u64)) as usize
}

impl<B: IoBuf> SegmentAppender<B> {
    /// [`SegmentAppender::new`] with the write buffers of a log with `cfg`.
    pub fn for_log(cfg: &LogConfig, logical_end: u64, tail: Vec<u8>) -> Self {
        Self::new(logical_end, tail, write_buf_bytes(cfg))
    }

    /// An appender continuing a segment of `logical_end` bytes whose partial
    /// last block holds `tail` (bytes from `align_down(logical_end)`).
    pub fn new(logical_end: u64, tail: Vec<u8>, buf_bytes: usize) -> Self {
        assert_eq!(align_down(logical_end) + tail.len() as u64, logical_end);
        assert!(buf_bytes as u64 % ALIGN == 0 && buf_bytes as u64 >= ALIGN);
        SegmentAppender {
            buf_bytes,
            cur: None,
            cur_pos: align_down(logical_end),
            cur_len: 0,
            carry: tail,
            ready: VecDeque::new(),
            logical_end,
            filled: 0,
        }
    }

    /// Bytes appended but not yet handed to a write.
    pub fn unwritten_bytes(&self) -> u64 {
        self.ready
            .iter()
            .map(|op| op.buf.as_slice().len() as u64)
            .sum::<u64>()
            + self.cur_len as u64
    }

    /// Bytes of the segment, appended here or before the appender was made.
    pub fn logical_end(&self) -> u64 {
        self.logical_end
    }

    /// Full buffers `append` has made since the appender was created.
    pub fn buffers_filled(&self) -> u64 {
        self.filled
    }

    /// Copies `data` after the logical end.
    pub fn append(&mut self, mut data: &[u8], alloc: &mut impl FnMut(usize) -> B) {
        while !data.is_empty() {
            let mut buf = match self.cur.take() {
                Some(b) => b,
                None => {
                    let mut b = alloc(self.buf_bytes);
                    let carry = std::mem::take(&mut self.carry);
                    b.as_mut_slice()[..carry.len()].copy_from_slice(&carry);
                    self.cur_len = carry.len();
                    b
                }
            };
            let n = (self.buf_bytes - self.cur_len).min(data.len());
            buf.as_mut_slice()[self.cur_len..self.cur_len + n].copy_from_slice(&data[..n]);
            self.cur_len += n;
            self.logical_end += n as u64;
            data = &data[n..];
            if self.cur_len == self.buf_bytes {
                let pos = self.cur_pos;
                self.cur_pos += self.buf_bytes as u64;
                self.cur_len = 0;
                self.filled += 1;
                self.ready.push_back(WriteOp {
                    pos,
                    buf: Rc::new(buf),
                    logical_end: self.cur_pos,
                });
            } else {
                self.cur = Some(buf);
            }
        }
    }

    /// The writes to issue now, in order. With `partial`, the buffer being
    /// filled goes too, zero-padded to the block, and its partial last block
    /// is carried into the next buffer.
    pub fn take(&mut self, partial: bool) -> Vec<WriteOp<B>> {
        if partial {
            if let Some(mut buf) = self.cur.take() {
                let len = self.cur_len;
                let padded = align_up(len as u64) as usize;
                let whole = align_down(len as u64) as usize;
                buf.as_mut_slice()[len..padded].fill(0);
                self.carry = buf.as_slice()[whole..len].to_vec();
                buf.trim(padded);
                let pos = self.cur_pos;
                self.cur_pos += whole as u64;
                self.cur_len = 0;
                self.ready.push_back(WriteOp {
                    pos,
                    buf: Rc::new(buf),
                    logical_end: pos + len as u64,
                });
            }
        }
        assert!(self
            .ready
            .iter()
            .all(|op| op.logical_end <= self.logical_end));
        self.ready.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::SimBuf;
    use crate::storage::{SimDisk, Storage};
    use proptest::prelude::*;

    /// Applies writes to a byte image the way a file would.
    fn apply(img: &mut Vec<u8>, ops: Vec<WriteOp<SimBuf>>) -> u64 {
        let mut end = 0;
        for op in ops {
            let d = op.buf.as_slice();
            assert_eq!(op.pos % ALIGN, 0);
            assert_eq!(d.len() as u64 % ALIGN, 0);
            let p = op.pos as usize;
            if img.len() < p + d.len() {
                img.resize(p + d.len(), 0);
            }
            img[p..p + d.len()].copy_from_slice(d);
            end = op.logical_end;
        }
        end
    }

    proptest! {
        #[test]
        fn file_image_matches_appended_bytes(chunks in proptest::collection::vec((1usize..20_000, any::<bool>()), 1..40)) {
            let s = SimDisk::new().storage();
            let mut alloc = |n| s.alloc_buf(n);
            let mut a = SegmentAppender::new(0, Vec::new(), 16384);
            let mut img = Vec::new();
            let mut expect = Vec::new();
            let mut written = 0;
            for (i, (len, flush)) in chunks.iter().enumerate() {
                let data = vec![(i % 251) as u8 + 1; *len];
                a.append(&data, &mut alloc);
                expect.extend_from_slice(&data);
                let ops = a.take(*flush);
                if !ops.is_empty() {
                    written = apply(&mut img, ops);
                }
                if *flush {
                    prop_assert_eq!(written, expect.len() as u64);
                }
                prop_assert_eq!(&img[..written as usize], &expect[..written as usize]);
            }
            written = apply(&mut img, a.take(true)).max(written);
            prop_assert_eq!(written, expect.len() as u64);
            prop_assert_eq!(&img[..expect.len()], &expect[..]);
            prop_assert!(img[expect.len()..].iter().all(|b| *b == 0), "padding is zeros");
        }
    }

    #[test]
    fn continues_a_partial_block() {
        let s = SimDisk::new().storage();
        let mut alloc = |n| s.alloc_buf(n);
        let mut a = SegmentAppender::new(5000, vec![9u8; 5000 - 4096], 8192);
        a.append(&[1u8; 10], &mut alloc);
        let ops = a.take(true);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].pos, 4096);
        assert_eq!(ops[0].logical_end, 5010);
        let d = ops[0].buf.as_slice();
        assert_eq!(&d[..904], &[9u8; 904][..]);
        assert_eq!(&d[904..914], &[1u8; 10][..]);
    }
}
