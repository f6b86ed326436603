//! Cold reads go from segment files to sockets with sendfile(2), on helper
//! threads: a page-cache miss would otherwise stall the reactor. The
//! caller awaits completion through a channel; the socket is written by
//! nothing else meanwhile.
//!
//! A job never holds a thread for a client that stopped reading: when the
//! socket stays full for SENDFILE_POLL_MS the job ends with what it sent,
//! and the caller waits on its own reactor (and gives up after its stall
//! timeout) before sending the rest. Otherwise two such clients would
//! stall every cold read of the broker.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::constants::{SENDFILE_POLL_MS, SENDFILE_QUEUE_CAPACITY, SENDFILE_THREADS};

struct Job {
    /// Our own duplicate of the socket: the connection may close its fd
    /// while the job runs without the number being reused under us.
    sock: OwnedFd,
    file: Arc<File>,
    position: u64,
    len: u32,
    reply: flume::Sender<io::Result<u32>>,
}

/// Handle to the sendfile threads (cheap to clone, shared by all shards).
#[derive(Clone)]
pub struct SendfilePool {
    tx: flume::Sender<Job>,
}

impl SendfilePool {
    pub fn start() -> io::Result<SendfilePool> {
        let (tx, rx) = flume::bounded::<Job>(SENDFILE_QUEUE_CAPACITY);
        for i in 0..SENDFILE_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("spindle-sendfile-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let r = bound_blocking(job.sock.as_raw_fd()).and_then(|()| {
                            send_range(
                                job.sock.as_raw_fd(),
                                &job.file,
                                job.position,
                                job.len,
                                Duration::from_millis(SENDFILE_POLL_MS),
                            )
                        });
                        let _ = job.reply.send(r);
                    }
                })?;
        }
        Ok(SendfilePool { tx })
    }

    /// Sends up to `len` bytes of `file` from `position` to the socket
    /// `sock`: all of them, or what fitted before the socket stayed full
    /// for SENDFILE_POLL_MS (possibly none). Returns the bytes sent.
    pub async fn send_some(
        &self,
        sock: RawFd,
        file: Arc<File>,
        position: u64,
        len: u32,
    ) -> io::Result<u32> {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor the caller holds
        // open for the duration of this call; the new descriptor is ours
        // alone and owned by the OwnedFd below.
        let dup = unsafe { libc::fcntl(sock, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh, valid descriptor nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(dup) };
        let (reply, rx) = flume::bounded(1);
        self.tx
            .send_async(Job {
                sock,
                file,
                position,
                len,
                reply,
            })
            .await
            .map_err(|_| io::Error::other("sendfile threads are gone"))?;
        rx.recv_async()
            .await
            .map_err(|_| io::Error::other("sendfile thread died"))?
    }
}

/// glommio's sockets are in blocking mode (it never blocks on them: it
/// sends with MSG_DONTWAIT and polls), so a sendfile(2) into a full one
/// would wait for the peer forever. SO_SNDTIMEO bounds that wait to
/// SENDFILE_POLL_MS; only blocking calls see it, which glommio never makes.
fn bound_blocking(sock: RawFd) -> io::Result<()> {
    let ms = SENDFILE_POLL_MS as libc::suseconds_t;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: ms * 1000,
    };
    // SAFETY: setsockopt on a descriptor this job owns, with a timeval of
    // the size given.
    let r = unsafe {
        libc::setsockopt(
            sock,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// sendfile(2) loop for a non-blocking socket: waits in poll(2) when the
/// socket buffer is full, at most `patience` without progress; returns the
/// bytes sent.
fn send_range(
    sock: RawFd,
    file: &File,
    position: u64,
    len: u32,
    patience: Duration,
) -> io::Result<u32> {
    let start =
        libc::off_t::try_from(position).map_err(|_| io::Error::other("offset too large"))?;
    let mut offset = start;
    let end = offset + libc::off_t::from(len);
    let mut last_progress = Instant::now();
    while offset < end {
        let want = (end - offset) as usize;
        // SAFETY: both descriptors are open for the call; `offset` is a
        // valid pointer to our local.
        let n = unsafe { libc::sendfile(sock, file.as_raw_fd(), &mut offset, want) };
        if n > 0 {
            last_progress = Instant::now();
            continue;
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended before the range did",
            ));
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                let left = patience.saturating_sub(last_progress.elapsed());
                if left.is_zero() {
                    break;
                }
                let mut pfd = libc::pollfd {
                    fd: sock,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd on our stack.
                let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
            _ => return Err(err),
        }
    }
    Ok((offset - start) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn sends_a_file_range_to_a_nonblocking_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let client = std::net::TcpStream::connect(addr).unwrap();
        client.set_nonblocking(true).unwrap();
        let pool = SendfilePool::start().unwrap();
        let (mut at, mut left) = (100u64, 3_000_000u32);
        while left > 0 {
            let n = futures_lite::future::block_on(pool.send_some(
                client.as_raw_fd(),
                file.clone(),
                at,
                left,
            ))
            .unwrap();
            at += u64::from(n);
            left -= n;
        }
        drop(client);
        let got = reader.join().unwrap();
        assert_eq!(got, &data[100..3_000_100]);
    }

    #[test]
    fn a_peer_that_never_reads_does_not_hold_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 64 << 20]).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = SendfilePool::start().unwrap();
        // More stalled peers than threads, on blocking sockets as glommio's
        // are: each job comes back with a partial count instead of waiting
        // for its peer (before SO_SNDTIMEO the first two hung for good).
        let mut held = Vec::new();
        for _ in 0..SENDFILE_THREADS + 2 {
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (server_side, _) = listener.accept().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let (pool, file, fd) = (pool.clone(), file.clone(), server_side.as_raw_fd());
            std::thread::spawn(move || {
                let r = futures_lite::future::block_on(pool.send_some(fd, file, 0, 64 << 20));
                let _ = tx.send(r.map_err(|e| e.to_string()));
            });
            let sent = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a sendfile job waited for a peer that never reads")
                .unwrap();
            assert!(sent < 64 << 20, "a peer that never reads took it all");
            held.push((client, server_side));
        }
    }
}
