//! The network seam, connection side: one task reads request frames and
//! starts a handler task per request (so a connection's requests are
//! pipelined, and their appends start in arrival order); a writer task
//! awaits the handlers in order and writes their responses. At most
//! INFLIGHT_REQUESTS_PER_CONNECTION requests are in flight: beyond that
//! the reader stops reading, which is the producer's backpressure.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::Task;
use spindle_codec::fetch::Piece;
use spindle_codec::frame::{frame_size, FRAME_PREFIX_LEN};
use spindle_codec::DecodeError;
use spindle_engine::ReadChunk;
use tracing::debug;

use crate::constants::{
    INFLIGHT_BYTES_PER_CONNECTION, INFLIGHT_REQUESTS_PER_CONNECTION, READ_CHUNK_BYTES,
};
use crate::dispatch::{dispatch, Outcome, Response};
use crate::shard::Shard;

/// Serves `stream` on the current shard until the peer goes away.
pub fn spawn(shard: Rc<Shard>, stream: TcpStream) {
    glommio::spawn_local(async move {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        let id = shard.id;
        serve(shard.clone(), stream, peer).await;
        shard.conns.0[id as usize].fetch_sub(1, Ordering::Relaxed);
        debug!(shard = id, ?peer, "connection closed");
    })
    .detach();
}

/// Both halves use the stream; each borrow lasts one poll, never across
/// an await, so the reader and the writer never collide.
#[derive(Clone)]
struct Shared(Rc<RefCell<TcpStream>>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_close(cx)
    }
}

impl Shared {
    fn shutdown(&self) {
        let fd = self.0.borrow().as_raw_fd();
        // SAFETY: shutdown(2) on the socket we own; it stays open (the
        // TcpStream closes it on drop). Wakes a reader blocked on it.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: Option<std::net::SocketAddr>) {
    let io = Shared(Rc::new(RefCell::new(stream)));
    let (tx, rx) =
        local_channel::new_bounded::<(Task<Outcome>, u64)>(INFLIGHT_REQUESTS_PER_CONNECTION);
    let frame_max = shard.config.request_bytes_max;
    // Request bytes in flight: taken when a frame is read, given back when
    // its response is written, so a client pipelining large requests is
    // paused rather than buffered.
    let inflight_max = INFLIGHT_BYTES_PER_CONNECTION.max(u64::from(frame_max));
    let inflight = Rc::new(Semaphore::new(inflight_max));
    let writer = {
        let io = io.clone();
        let shard = shard.clone();
        let writer_inflight = inflight.clone();
        glommio::spawn_local(async move {
            let mut out = io.clone();
            while let Some((task, bytes)) = rx.recv().await {
                let result = match task.await {
                    Outcome::Respond(r) => write_response(&shard, &mut out, r).await,
                    Outcome::Silent => Ok(()),
                    Outcome::Close(reason) => Err(io::Error::other(reason)),
                };
                writer_inflight.signal(bytes);
                if let Err(e) = result {
                    debug!(shard = shard.id, error = %e, "closing connection");
                    break;
                }
            }
            // Wake a reader waiting for in-flight room, then one in read.
            writer_inflight.close();
            io.shutdown();
        })
    };
    let mut input = io.clone();
    let mut inbuf = Input::default();
    'read: loop {
        loop {
            match inbuf.next_frame(frame_max) {
                Ok(Some(frame)) => {
                    let bytes = (frame.len() as u64).min(inflight_max);
                    if inflight.acquire(bytes).await.is_err() {
                        break 'read;
                    }
                    let task = glommio::spawn_local(dispatch(shard.clone(), frame, peer));
                    if tx.send((task, bytes)).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(shard = shard.id, error = %e, "bad frame; closing connection");
                    break 'read;
                }
            }
        }
        let room = match inbuf.room(frame_max) {
            Ok(r) => r,
            Err(_) => break,
        };
        match input.read(room).await {
            Ok(0) | Err(_) => break,
            Ok(n) => inbuf.filled += n,
        }
    }
    // Let the writer answer what was read, then stop.
    drop(tx);
    writer.await;
}

/// Bytes read from the socket are `buf[..filled]`; `buf[filled..]` is
/// zeroed room for the next reads, so each byte of buffer is zeroed once
/// rather than a whole read chunk per read call.
#[derive(Default)]
struct Input {
    buf: BytesMut,
    filled: usize,
}

impl Input {
    fn prefix(&self) -> Option<[u8; FRAME_PREFIX_LEN]> {
        let mut p = [0u8; FRAME_PREFIX_LEN];
        p.copy_from_slice(
            self.buf
                .get(..FRAME_PREFIX_LEN)
                .filter(|_| self.filled >= FRAME_PREFIX_LEN)?,
        );
        Some(p)
    }

    /// The next whole frame (without its prefix), if one has arrived. The
    /// frame is split off the buffer: no copy.
    fn next_frame(&mut self, frame_max: u32) -> Result<Option<BytesMut>, DecodeError> {
        let Some(prefix) = self.prefix() else {
            return Ok(None);
        };
        let total = FRAME_PREFIX_LEN + frame_size(prefix, frame_max)? as usize;
        if self.filled < total {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total);
        self.filled -= total;
        frame.advance(FRAME_PREFIX_LEN);
        Ok(Some(frame))
    }

    /// Room to read into: at least READ_CHUNK_BYTES, or what the frame
    /// being read still needs (its size already checked against the bound).
    fn room(&mut self, frame_max: u32) -> Result<&mut [u8], DecodeError> {
        let frame_end = match self.prefix() {
            Some(p) => FRAME_PREFIX_LEN + frame_size(p, frame_max)? as usize,
            None => 0,
        };
        if self.buf.len() == self.filled || self.buf.len() < frame_end {
            let want = frame_end.max(self.filled + READ_CHUNK_BYTES);
            self.buf.resize(want, 0);
        }
        Ok(&mut self.buf[self.filled..])
    }
}

async fn write_response(shard: &Shard, out: &mut Shared, r: Response) -> io::Result<()> {
    match r {
        Response::Frame(bytes) => out.write_all(&bytes).await,
        Response::Fetch(pieces) => {
            for piece in pieces {
                match piece {
                    Piece::Bytes(b) => out.write_all(&b).await?,
                    Piece::Chunk(c) => match c.0 {
                        ReadChunk::Memory(b) => out.write_all(&b).await?,
                        ReadChunk::File(range) => {
                            out.flush().await?;
                            let fd = out.0.borrow().as_raw_fd();
                            shard
                                .sendfile
                                .send(fd, range.file.clone(), range.position, range.len)
                                .await?;
                        }
                    },
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to an Input in reads of at most `step` bytes.
    fn frames(wire: &[u8], step: usize, max: u32) -> Result<Vec<Vec<u8>>, DecodeError> {
        let mut input = Input::default();
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            while let Some(f) = input.next_frame(max)? {
                out.push(f.to_vec());
            }
            if at == wire.len() {
                return Ok(out);
            }
            let room = input.room(max)?;
            let n = room.len().min(step).min(wire.len() - at);
            room[..n].copy_from_slice(&wire[at..at + n]);
            input.filled += n;
            at += n;
        }
    }

    #[test]
    fn frames_come_out_whole_whatever_the_read_sizes() {
        let mut wire = Vec::new();
        let sizes = [0usize, 1, 5, 70_000, 3, 200_000, 17];
        for (i, &n) in sizes.iter().enumerate() {
            wire.extend_from_slice(&(n as i32).to_be_bytes());
            wire.extend((0..n).map(|j| (i + j) as u8));
        }
        for step in [1, 3, 4096, 65_536, 1 << 20] {
            let got = frames(&wire, step, 1 << 20).unwrap();
            assert_eq!(got.len(), sizes.len());
            for (i, (f, &n)) in got.iter().zip(&sizes).enumerate() {
                assert_eq!(f.len(), n);
                assert!(f.iter().enumerate().all(|(j, b)| *b == (i + j) as u8));
            }
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_any_room_is_made() {
        let mut input = Input::default();
        let room = input.room(1000).unwrap();
        room[..4].copy_from_slice(&i32::MAX.to_be_bytes());
        input.filled = 4;
        assert!(input.next_frame(1000).is_err());
        assert!(input.room(1000).is_err());
        assert!(input.buf.capacity() < 1 << 20);
    }
}
