//! Cold reads go from segment files to sockets with sendfile(2), on helper
//! threads: a page-cache miss would otherwise stall the reactor. The
//! caller awaits completion through a channel; the socket is written by
//! nothing else meanwhile.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::constants::{SENDFILE_QUEUE_CAPACITY, SENDFILE_STALL_MS_MAX, SENDFILE_THREADS};

struct Job {
    /// Our own duplicate of the socket: the connection may close its fd
    /// while the job runs without the number being reused under us.
    sock: OwnedFd,
    file: Arc<File>,
    position: u64,
    len: u32,
    reply: flume::Sender<io::Result<()>>,
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
                        let r = send_range(job.sock.as_raw_fd(), &job.file, job.position, job.len);
                        let _ = job.reply.send(r);
                    }
                })?;
        }
        Ok(SendfilePool { tx })
    }

    /// Sends `len` bytes of `file` from `position` to the socket `sock`.
    pub async fn send(
        &self,
        sock: RawFd,
        file: Arc<File>,
        position: u64,
        len: u32,
    ) -> io::Result<()> {
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

/// sendfile(2) loop for a non-blocking socket: waits in poll(2) when the
/// socket buffer is full, at most SENDFILE_STALL_MS_MAX without progress.
fn send_range(sock: RawFd, file: &File, position: u64, len: u32) -> io::Result<()> {
    let mut offset =
        libc::off_t::try_from(position).map_err(|_| io::Error::other("offset too large"))?;
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
                let stalled = last_progress.elapsed();
                let left = Duration::from_millis(SENDFILE_STALL_MS_MAX).saturating_sub(stalled);
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "socket stalled"));
                }
                let mut pfd = libc::pollfd {
                    fd: sock,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd on our stack.
                let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
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
    Ok(())
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
        futures_lite::future::block_on(pool.send(client.as_raw_fd(), file, 100, 3_000_000))
            .unwrap();
        drop(client);
        let got = reader.join().unwrap();
        assert_eq!(got, &data[100..3_000_100]);
    }
}
