//! The network seam, accepting side: the only place (with
//! `connection.rs`) that names glommio's socket types. Shard 0 accepts
//! every connection and hands each to the shard with the fewest live
//! connections, so load is spread on purpose: SO_REUSEPORT's hash left 2
//! connections on one shard in 3 of 4 tries on this machine.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use glommio::net::{AcceptedTcpStream, TcpListener, TcpStream};
use tracing::{debug, warn};

use super::limits::{ConnPermit, IpLimits, Rejected};
use crate::shard::{ConnCounts, Shard, ShardMsg};

/// An accepted connection not yet bound to a shard; `Send`, so it can
/// move to the shard that will serve it, with its per-IP permit.
pub struct HandOff {
    stream: AcceptedTcpStream,
    peer: Option<SocketAddr>,
    permit: Option<ConnPermit>,
}

/// A connection bound to the shard that serves it.
pub struct Bound {
    pub stream: TcpStream,
    pub peer: Option<SocketAddr>,
    /// Gives the peer's per-IP slot back when the connection ends.
    pub permit: Option<ConnPermit>,
}

impl HandOff {
    /// Binds the connection to the current shard's reactor.
    pub fn bind(self) -> Bound {
        Bound {
            stream: self.stream.bind_to_executor(),
            peer: self.peer,
            permit: self.permit,
        }
    }
}

pub struct Listener(TcpListener);

impl Listener {
    pub fn bind(addr: &str) -> std::io::Result<Listener> {
        TcpListener::bind(addr)
            .map(Listener)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Adopts a listening socket bound elsewhere (before the shards ran).
    pub fn from_raw_fd(fd: std::os::fd::RawFd) -> Listener {
        use std::os::fd::FromRawFd;
        // SAFETY: the caller passes a listening socket it no longer owns.
        Listener(unsafe { TcpListener::from_raw_fd(fd) })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0
            .local_addr()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// Picks the shard with the fewest live connections; ties go round-robin
/// from `next` so equal loads still spread.
pub fn pick_shard(counts: &ConnCounts, next: &mut usize) -> usize {
    let n = counts.0.len();
    let mut best = *next % n;
    let mut best_load = usize::MAX;
    for i in 0..n {
        let idx = (*next + i) % n;
        let load = counts.0[idx].load(Ordering::Relaxed);
        if load < best_load {
            best = idx;
            best_load = load;
        }
    }
    *next = (best + 1) % n;
    best
}

/// Checks the connection limits for a new connection from `peer`.
fn admit(
    shard: &Shard,
    ips: &IpLimits,
    peer: Option<SocketAddr>,
) -> Result<Option<ConnPermit>, Rejected> {
    if shard.conns.total() >= shard.config.connections_max as usize {
        return Err(Rejected::Total);
    }
    match peer {
        Some(p) => ips.admit(p).map(Some),
        None => Ok(None),
    }
}

fn log_rejected(shard: &Shard, why: Rejected, peer: Option<SocketAddr>) {
    shard.metrics.rejected(why);
    if let Some(suppressed) = shard.conn_logs.rejected.allow() {
        let max = match why {
            Rejected::Total => shard.config.connections_max,
            Rejected::PerIp => shard.config.connections_per_ip_max,
        };
        warn!(
            limit = why.limit_name(),
            max,
            peer = %peer.map_or("unknown".to_string(), |p| p.to_string()),
            suppressed,
            "connection limit reached; closing new connection"
        );
    }
}

/// Accepts forever on shard 0, handing connections out.
pub async fn accept_loop(shard: Rc<Shard>, listener: Listener) {
    let mut next = 0usize;
    let mut accepted: u64 = 0;
    let ips = IpLimits::new(
        shard.config.connections_per_ip_max,
        shard.config.connections_max,
    );
    loop {
        let stream = match listener.0.shared_accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        let permit = match admit(&shard, &ips, peer) {
            Ok(p) => p,
            Err(why) => {
                log_rejected(&shard, why, peer);
                drop(stream.bind_to_executor());
                continue;
            }
        };
        let conn = HandOff {
            stream,
            peer,
            permit,
        };
        shard.metrics.accepted();
        accepted += 1;
        let target = pick_shard(&shard.conns, &mut next);
        shard.conns.0[target].fetch_add(1, Ordering::Relaxed);
        debug!(connection = accepted, shard = target, "connection assigned");
        if target as u32 == shard.id {
            super::connection::spawn(shard.clone(), conn.bind());
        } else if let Err(back) = shard.send_to(target as u32, ShardMsg::Conn(conn)).await {
            // The peer is gone (shutting down): serve it here if we still
            // hold it.
            shard.conns.0[target].fetch_sub(1, Ordering::Relaxed);
            if let Some(ShardMsg::Conn(conn)) = back {
                shard.conns.0[shard.id as usize].fetch_add(1, Ordering::Relaxed);
                super::connection::spawn(shard.clone(), conn.bind());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn connections_spread_evenly() {
        let counts = ConnCounts((0..3).map(|_| AtomicUsize::new(0)).collect());
        let mut next = 0;
        for _ in 0..9 {
            let s = pick_shard(&counts, &mut next);
            counts.0[s].fetch_add(1, Ordering::Relaxed);
        }
        for c in &counts.0 {
            assert_eq!(c.load(Ordering::Relaxed), 3);
        }
        // A shard whose connections closed gets the next ones.
        counts.0[1].store(0, Ordering::Relaxed);
        assert_eq!(pick_shard(&counts, &mut next), 1);
    }
}
