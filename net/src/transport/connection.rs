//! The network seam, connection side: one task reads request frames and
//! starts a handler task per request (so a connection's requests are
//! pipelined, and their appends start in arrival order); a writer task
//! awaits the handlers in order and writes their responses. At most
//! `--max-inflight-requests` requests (and INFLIGHT_BYTES_PER_CONNECTION
//! request bytes) are in flight, and the shard's connections together
//! hold at most `--inflight-request-mb` request bytes: beyond that the
//! reader stops reading, which is the producer's backpressure.
//!
//! Timeouts, so that no client holds a connection's resources forever: a
//! request half received for `--request-read-timeout-ms` (slow loris), a
//! connection with nothing to do for `--connections-max-idle-ms`, and a
//! response write without progress for `--send-stall-timeout-ms` (a client
//! that stopped reading) each close the connection.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::Task;
use spindle_codec::fetch::Piece;
use spindle_codec::frame::{frame_size, FRAME_PREFIX_LEN};
use spindle_codec::DecodeError;
use spindle_engine::ReadChunk;
use tracing::{debug, warn};

use super::listener::Bound;
use super::metrics::CloseReason;
use crate::api::dispatch::dispatch;
use crate::api::{Outcome, Response};
use crate::constants::{
    INFLIGHT_BYTES_PER_CONNECTION, READ_CHUNK_BYTES, READ_CHUNK_BYTES_MIN, READ_RESERVE_BYTES_MAX,
    SENDFILE_RETRY_MS_MAX,
};
use crate::shard::Shard;

/// Serves a connection on the current shard until the peer goes away.
pub fn spawn(shard: Rc<Shard>, conn: Bound) {
    glommio::spawn_local(async move {
        let Bound {
            stream,
            peer,
            permit,
        } = conn;
        let _ = stream.set_nodelay(true);
        let id = shard.id;
        serve(shard.clone(), stream, peer).await;
        drop(permit);
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

    /// Bounds the next read (glommio arms the timer when a read waits,
    /// and disarms it when one completes).
    fn set_read_timeout(&self, d: Duration) {
        let _ = self.0.borrow().set_read_timeout(Some(d));
    }

    /// Bounds each write's wait for room in the socket buffer.
    fn set_write_timeout(&self, d: Duration) {
        let _ = self.0.borrow().set_write_timeout(Some(d));
    }
}

/// A request read and being handled.
struct Pending {
    task: Task<Outcome>,
    /// Request bytes it holds of the connection's in-flight budget.
    bytes: u64,
    /// The same bytes of the shard's budget, given back on drop (a
    /// request dropped unanswered, when its connection ends, included).
    _shard_bytes: ShardBytes,
    api_key: i16,
    read_at: Instant,
}

/// Bytes taken from the shard's `--inflight-request-mb` budget.
struct ShardBytes {
    shard: Rc<Shard>,
    bytes: u64,
}

impl ShardBytes {
    async fn take(shard: &Rc<Shard>, bytes: u64) -> Option<ShardBytes> {
        shard.request_bytes.acquire(bytes).await.ok()?;
        Some(ShardBytes {
            shard: shard.clone(),
            bytes,
        })
    }
}

impl Drop for ShardBytes {
    fn drop(&mut self) {
        self.shard.request_bytes.signal(self.bytes);
    }
}

/// Per-connection in-flight bounds: requests and request bytes.
struct InFlight {
    slots: Semaphore,
    slots_max: u64,
    bytes: Semaphore,
    bytes_max: u64,
}

impl InFlight {
    fn idle(&self) -> bool {
        self.slots.available() == self.slots_max
    }
    fn close(&self) {
        self.slots.close();
        self.bytes.close();
    }
}

/// Why the reader stopped.
enum ReadEnd {
    /// The peer closed or reset, or the writer ended the connection.
    Done,
    /// The broker closes the connection.
    Close(CloseReason, String),
}

async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: Option<SocketAddr>) {
    let io = Shared(Rc::new(RefCell::new(stream)));
    io.set_write_timeout(Duration::from_millis(shard.config.send_stall_timeout_ms));
    let slots_max = u64::from(shard.config.inflight_requests_per_connection);
    // Request bytes in flight: taken when a frame is read, given back when
    // its response is written, so a client pipelining large requests is
    // paused rather than buffered. Never below the frame limit, so one
    // maximal request always fits.
    let bytes_max = INFLIGHT_BYTES_PER_CONNECTION.max(u64::from(shard.config.request_bytes_max));
    let inflight = Rc::new(InFlight {
        slots: Semaphore::new(slots_max),
        slots_max,
        bytes: Semaphore::new(bytes_max),
        bytes_max,
    });
    let (tx, rx) = local_channel::new_bounded::<Pending>(slots_max as usize);
    let writer = glommio::spawn_local(write_loop(
        shard.clone(),
        io.clone(),
        rx,
        inflight.clone(),
        peer,
    ));
    let end = read_loop(&shard, &io, &tx, &inflight, peer).await;
    if let ReadEnd::Close(why, detail) = end {
        report_close(&shard, peer, why, &detail);
    }
    // Let the writer answer what was read, then stop.
    drop(tx);
    writer.await;
}

/// Counts and logs a connection the broker closes (rate-limited: a
/// hostile client must not flood the log).
fn report_close(shard: &Shard, peer: Option<SocketAddr>, why: CloseReason, detail: &str) {
    shard.metrics.closed(why);
    let peer = peer.map_or("unknown".to_string(), |p| p.to_string());
    let limiter = match why {
        CloseReason::Idle => {
            debug!(shard = shard.id, %peer, "idle connection closed");
            return;
        }
        CloseReason::BadFrame | CloseReason::BadRequest => &shard.conn_logs.bad_request,
        CloseReason::RequestTimeout | CloseReason::SendStall => &shard.conn_logs.timed_out,
    };
    if let Some(suppressed) = limiter.allow() {
        warn!(
            shard = shard.id,
            %peer,
            reason = why.label(),
            detail,
            suppressed,
            "closing connection"
        );
    }
}

async fn read_loop(
    shard: &Rc<Shard>,
    io: &Shared,
    tx: &LocalSender<Pending>,
    inflight: &InFlight,
    peer: Option<SocketAddr>,
) -> ReadEnd {
    let frame_max = shard.config.request_bytes_max;
    let idle = Duration::from_millis(shard.config.connection_idle_ms);
    let request_timeout = Duration::from_millis(shard.config.request_read_timeout_ms);
    let mut input = io.clone();
    let mut inbuf = Input::default();
    // When the bytes of the request being received started arriving, or
    // when the reader resumed after dispatching one (so time paused by
    // backpressure never counts against the client).
    let mut partial_since: Option<Instant> = None;
    loop {
        loop {
            match inbuf.next_frame(frame_max) {
                Ok(Some(frame)) => {
                    let bytes = (frame.len() as u64).min(inflight.bytes_max);
                    if inflight.slots.acquire(1).await.is_err()
                        || inflight.bytes.acquire(bytes).await.is_err()
                    {
                        return ReadEnd::Done;
                    }
                    let shard_max = shard.config.inflight_request_bytes_per_shard;
                    let Some(shard_bytes) = ShardBytes::take(shard, bytes.min(shard_max)).await
                    else {
                        return ReadEnd::Done;
                    };
                    partial_since = None;
                    let api_key = frame
                        .get(..2)
                        .map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]));
                    let pending = Pending {
                        task: glommio::spawn_local(dispatch(shard.clone(), frame, peer)),
                        bytes,
                        _shard_bytes: shard_bytes,
                        api_key,
                        read_at: Instant::now(),
                    };
                    if tx.send(pending).await.is_err() {
                        return ReadEnd::Done;
                    }
                }
                Ok(None) => break,
                Err(e) => return ReadEnd::Close(CloseReason::BadFrame, e.to_string()),
            }
        }
        let timeout = if inbuf.filled > 0 {
            let since = *partial_since.get_or_insert_with(Instant::now);
            let left = request_timeout.saturating_sub(since.elapsed());
            if left.is_zero() {
                let detail = format!(
                    "{} bytes of a request received in {} ms",
                    inbuf.filled,
                    request_timeout.as_millis()
                );
                return ReadEnd::Close(CloseReason::RequestTimeout, detail);
            }
            left
        } else {
            idle
        };
        let room = match inbuf.room(frame_max) {
            Ok(r) => r,
            Err(e) => return ReadEnd::Close(CloseReason::BadFrame, e.to_string()),
        };
        io.set_read_timeout(timeout);
        match input.read(room).await {
            Ok(0) => return ReadEnd::Done,
            Ok(n) => {
                inbuf.filled += n;
                shard.metrics.bytes_in(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if inbuf.filled == 0 && inflight.idle() {
                    let detail = format!("idle for {} ms", idle.as_millis());
                    return ReadEnd::Close(CloseReason::Idle, detail);
                }
                // A partial request: the next turn checks its deadline.
                // Requests in flight (a long poll): not idle, read on.
            }
            Err(_) => return ReadEnd::Done,
        }
    }
}

/// Awaits the handlers in request order and writes their responses.
async fn write_loop(
    shard: Rc<Shard>,
    io: Shared,
    rx: local_channel::LocalReceiver<Pending>,
    inflight: Rc<InFlight>,
    peer: Option<SocketAddr>,
) {
    let mut out = io.clone();
    let stall = Duration::from_millis(shard.config.send_stall_timeout_ms);
    while let Some(p) = rx.recv().await {
        let result = match p.task.await {
            Outcome::Respond(r) => write_response(&shard, &mut out, r, stall)
                .await
                .map(|n| shard.metrics.bytes_out(n))
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::TimedOut {
                        Some((CloseReason::SendStall, e.to_string()))
                    } else {
                        debug!(shard = shard.id, error = %e, "closing connection");
                        None
                    }
                }),
            Outcome::Silent => Ok(()),
            Outcome::Close(reason) => Err(Some((CloseReason::BadRequest, reason))),
        };
        shard.metrics.request_done(p.api_key, p.read_at.elapsed());
        inflight.bytes.signal(p.bytes);
        inflight.slots.signal(1);
        if let Err(why) = result {
            if let Some((why, detail)) = why {
                report_close(&shard, peer, why, &detail);
            }
            break;
        }
    }
    // Wake a reader waiting for in-flight room, then one in read.
    inflight.close();
    io.shutdown();
}

/// Bytes read from the socket are `buf[..filled]`; `buf[filled..]` is
/// zeroed room for the next reads, so each byte of buffer is zeroed once
/// rather than a whole read chunk per read call.
#[derive(Default)]
struct Input {
    buf: BytesMut,
    filled: usize,
    /// Room added when the buffer is full: READ_CHUNK_BYTES_MIN at first
    /// (an idle connection costs little), doubling up to READ_CHUNK_BYTES.
    chunk: usize,
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
        if total > READ_CHUNK_BYTES {
            // The next frame starts in a small read: what arrives of it
            // before its size is known is copied once when its room is
            // reserved.
            self.chunk = 0;
        }
        Ok(Some(frame))
    }

    /// Room to read into, made when the buffer is full: one chunk, or for
    /// a large frame as much again as has arrived of it (up to its end;
    /// its size was checked against the bound). So the memory touched
    /// grows with the bytes received, never with the size a peer
    /// announced. Address space for the frame (up to
    /// READ_RESERVE_BYTES_MAX) is reserved once: the buffer shares its
    /// allocation with the frames split off before, so each growth would
    /// otherwise copy what has arrived (a profile of 1 MiB produce
    /// requests showed that copy at 14% of the broker's CPU).
    fn room(&mut self, frame_max: u32) -> Result<&mut [u8], DecodeError> {
        let frame_end = match self.prefix() {
            Some(p) => FRAME_PREFIX_LEN + frame_size(p, frame_max)? as usize,
            None => 0,
        };
        if self.buf.len() == self.filled {
            self.chunk = (self.chunk * 2).clamp(READ_CHUNK_BYTES_MIN, READ_CHUNK_BYTES);
            let frame_left = frame_end.saturating_sub(self.filled);
            let mut step = self.chunk.max(self.filled.min(frame_left));
            if frame_end > READ_CHUNK_BYTES && frame_left > 0 {
                // A large frame is read up to its end and no further, so
                // nothing of the next one shares (and must be copied out
                // of) its allocation.
                step = step.min(frame_left);
            }
            if self.filled + step > self.buf.capacity() {
                // Only when the room does not fit: each reallocation copies
                // what arrived, so grow by a lot (address space) at once.
                let ahead = READ_RESERVE_BYTES_MAX.max(self.filled);
                let want = frame_end.min(self.filled + ahead).max(self.filled + step);
                self.buf.reserve(want - self.buf.len());
            }
            self.buf.resize(self.filled + step, 0);
        }
        Ok(&mut self.buf[self.filled..])
    }
}

/// Writes a response; returns the bytes written.
async fn write_response(
    shard: &Shard,
    out: &mut Shared,
    r: Response,
    stall: Duration,
) -> io::Result<u64> {
    match r {
        Response::Frame(bytes) => out.write_all(&bytes).await.map(|()| bytes.len() as u64),
        Response::Fetch(pieces) => {
            let mut n = 0u64;
            for piece in pieces {
                match piece {
                    Piece::Bytes(b) => {
                        out.write_all(&b).await?;
                        n += b.len() as u64;
                    }
                    Piece::Chunk(c) => match c.0 {
                        ReadChunk::Memory(b) => {
                            out.write_all(&b).await?;
                            n += b.len() as u64;
                        }
                        ReadChunk::File(range) => {
                            out.flush().await?;
                            send_file_range(shard, out, &range, stall).await?;
                            n += u64::from(range.len);
                        }
                    },
                }
            }
            Ok(n)
        }
    }
}

/// Sends a file range with sendfile on the helper threads; while the
/// socket is full, waits here (backing off up to SENDFILE_RETRY_MS_MAX),
/// and fails after `stall` without progress.
async fn send_file_range(
    shard: &Shard,
    out: &Shared,
    range: &spindle_engine::FileRange,
    stall: Duration,
) -> io::Result<()> {
    let fd = out.0.borrow().as_raw_fd();
    let (mut position, mut left) = (range.position, range.len);
    let mut last_progress = Instant::now();
    let mut backoff = Duration::from_millis(1);
    while left > 0 {
        let n = shard
            .sendfile
            .send_some(fd, range.file.clone(), position, left)
            .await?;
        if n > 0 {
            position += u64::from(n);
            left -= n;
            last_progress = Instant::now();
            backoff = Duration::from_millis(1);
            continue;
        }
        if last_progress.elapsed() >= stall {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "socket stalled"));
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(SENDFILE_RETRY_MS_MAX));
    }
    Ok(())
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

    #[test]
    fn announced_sizes_do_not_make_room_until_bytes_arrive() {
        let mut input = Input::default();
        let room = input.room(200 << 20).unwrap();
        room[..8].copy_from_slice(&[5, 0xf5, 0xe1, 0, 0, 3, 0, 7]);
        input.filled = 8;
        assert!(input.next_frame(200 << 20).unwrap().is_none());
        let room = input.room(200 << 20).unwrap();
        assert!(
            room.len() < 1 << 20,
            "room {} for a 100 MB announcement",
            room.len()
        );
        // Address space only, and bounded; the memory touched is `room`.
        assert!(input.buf.capacity() <= READ_RESERVE_BYTES_MAX + (64 << 10));
    }

    #[test]
    fn a_large_frame_is_received_without_moving() {
        // Frames split off earlier share the buffer's allocation; growing
        // it for the next frame must not copy that frame's start around.
        let mut input = Input::default();
        let mut wire = Vec::new();
        for _ in 0..2 {
            wire.extend_from_slice(&(3_000_000i32).to_be_bytes());
            wire.extend(std::iter::repeat_n(7u8, 3_000_000));
        }
        let mut at = 0;
        let mut frames = Vec::new();
        let mut starts = Vec::new();
        while frames.len() < 2 {
            while let Some(f) = input.next_frame(4 << 20).unwrap() {
                frames.push(f);
            }
            if frames.len() == 2 {
                break;
            }
            let room = input.room(4 << 20).unwrap();
            let n = room.len().min(64 << 10).min(wire.len() - at);
            room[..n].copy_from_slice(&wire[at..at + n]);
            input.filled += n;
            at += n;
            starts.push(input.buf.as_ptr() as usize);
        }
        // Once a frame's prefix arrived, its buffer stayed put.
        let moves = starts.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(
            moves <= 4,
            "the buffer moved {moves} times for two 3 MB frames"
        );
        assert!(frames
            .iter()
            .all(|f| f.len() == 3_000_000 && f.iter().all(|b| *b == 7)));
    }
}
