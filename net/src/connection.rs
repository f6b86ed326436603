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

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::Task;
use spindle_codec::fetch::Piece;
use spindle_codec::frame::split_frame;
use spindle_engine::ReadChunk;
use tracing::debug;

use crate::constants::{INFLIGHT_REQUESTS_PER_CONNECTION, READ_CHUNK_BYTES};
use crate::dispatch::{dispatch, Outcome, Response};
use crate::shard::Shard;

/// Serves `stream` on the current shard until the peer goes away.
pub fn spawn(shard: Rc<Shard>, stream: TcpStream) {
    glommio::spawn_local(async move {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        let id = shard.id;
        serve(shard.clone(), stream).await;
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

async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let io = Shared(Rc::new(RefCell::new(stream)));
    let (tx, rx) = local_channel::new_bounded::<Task<Outcome>>(INFLIGHT_REQUESTS_PER_CONNECTION);
    let writer = {
        let io = io.clone();
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let mut out = io.clone();
            while let Some(task) = rx.recv().await {
                let result = match task.await {
                    Outcome::Respond(r) => write_response(&shard, &mut out, r).await,
                    Outcome::Silent => Ok(()),
                    Outcome::Close(reason) => Err(io::Error::other(reason)),
                };
                if let Err(e) = result {
                    debug!(shard = shard.id, error = %e, "closing connection");
                    break;
                }
            }
            io.shutdown();
        })
    };
    let frame_max = shard.config.request_bytes_max;
    let mut input = io.clone();
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    'read: loop {
        loop {
            match split_frame(&mut buf, frame_max) {
                Ok(Some(frame)) => {
                    let task = glommio::spawn_local(dispatch(shard.clone(), frame));
                    if tx.send(task).await.is_err() {
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
        let start = buf.len();
        let spare = (buf.capacity() - start).max(READ_CHUNK_BYTES);
        buf.resize(start + spare, 0);
        match input.read(&mut buf[start..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.truncate(start + n),
        }
    }
    // Let the writer answer what was read, then stop.
    drop(tx);
    writer.await;
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
