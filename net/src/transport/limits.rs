//! Connection limits and the logs that go with them. The acceptor (shard
//! 0) counts live connections per client IP in a map it alone touches;
//! every connection carries a [`ConnPermit`] whose drop, on whichever
//! shard served it, sends the IP back over a bounded channel that the
//! acceptor drains before its next check. No lock, no atomics on the
//! accept path.
//!
//! [`LogLimiter`] keeps a hostile client from flooding the log: at most
//! CONNECTION_LOGS_PER_SECOND lines per second per reason per shard, the
//! rest counted and reported on the next line.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::constants::{CONNECTION_LOGS_PER_SECOND, CONNECTION_RELEASE_QUEUE_MIN};

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// `--max-connections` over the whole broker.
    Total,
    /// `--max-connections-per-ip` for the peer's address.
    PerIp,
}

impl Rejected {
    pub fn limit_name(self) -> &'static str {
        match self {
            Rejected::Total => "max-connections",
            Rejected::PerIp => "max-connections-per-ip",
        }
    }
}

/// Live connections per client IP, owned by the accepting shard.
pub struct IpLimits {
    max: u32,
    live: RefCell<HashMap<IpAddr, u32>>,
    released_tx: flume::Sender<IpAddr>,
    released_rx: flume::Receiver<IpAddr>,
}

/// Held by a live connection; dropping it gives its IP's slot back.
pub struct ConnPermit {
    ip: IpAddr,
    released: flume::Sender<IpAddr>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        // The queue holds one notice per live connection at most, so it
        // cannot be full; if it ever were, the slot would stay taken.
        if self.released.try_send(self.ip).is_err() {
            warn!(ip = %self.ip, "connection release lost; its per-IP slot stays taken");
        }
    }
}

impl IpLimits {
    /// `connections_max` bounds how many permits can be live at once.
    pub fn new(per_ip_max: u32, connections_max: u32) -> IpLimits {
        let cap = (connections_max as usize).max(CONNECTION_RELEASE_QUEUE_MIN);
        let (released_tx, released_rx) = flume::bounded(cap);
        IpLimits {
            max: per_ip_max,
            live: RefCell::new(HashMap::new()),
            released_tx,
            released_rx,
        }
    }

    /// A permit for a new connection from `peer`, unless its IP is at the
    /// limit.
    pub fn admit(&self, peer: SocketAddr) -> Result<ConnPermit, Rejected> {
        let mut live = self.live.borrow_mut();
        while let Ok(ip) = self.released_rx.try_recv() {
            if let Some(n) = live.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    live.remove(&ip);
                }
            }
        }
        let ip = peer.ip().to_canonical();
        let n = live.entry(ip).or_insert(0);
        if *n >= self.max {
            return Err(Rejected::PerIp);
        }
        *n += 1;
        Ok(ConnPermit {
            ip,
            released: self.released_tx.clone(),
        })
    }

    /// Live connections from `ip` as last counted (for tests).
    pub fn live(&self, ip: IpAddr) -> u32 {
        self.live.borrow().get(&ip).copied().unwrap_or(0)
    }
}

/// Lets a few log lines through per second; counts the rest.
pub struct LogLimiter {
    window: Cell<Option<Instant>>,
    in_window: Cell<u32>,
    suppressed: Cell<u64>,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter {
            window: Cell::new(None),
            in_window: Cell::new(0),
            suppressed: Cell::new(0),
        }
    }
}

impl LogLimiter {
    /// `Some(n)` if a line may be logged now, `n` lines having been
    /// suppressed since the last one; `None` to stay quiet.
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let fresh = self
            .window
            .get()
            .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(1));
        if fresh {
            self.window.set(Some(now));
            self.in_window.set(0);
        }
        if self.in_window.get() >= CONNECTION_LOGS_PER_SECOND {
            self.suppressed.set(self.suppressed.get() + 1);
            return None;
        }
        self.in_window.set(self.in_window.get() + 1);
        Some(self.suppressed.replace(0))
    }
}

/// The shard's limiters, one per kind of event.
#[derive(Default)]
pub struct ConnLogs {
    pub rejected: LogLimiter,
    pub bad_request: LogLimiter,
    pub timed_out: LogLimiter,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str, port: u16) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), port)
    }

    #[test]
    fn per_ip_limit_counts_live_connections() {
        let l = IpLimits::new(2, 10);
        let a1 = l.admit(peer("10.0.0.1", 1)).unwrap();
        let _a2 = l.admit(peer("10.0.0.1", 2)).unwrap();
        assert_eq!(l.admit(peer("10.0.0.1", 3)).err(), Some(Rejected::PerIp));
        // Another address has its own count; a v4-mapped v6 peer is the
        // same host as its v4 form.
        let _b = l.admit(peer("10.0.0.2", 1)).unwrap();
        assert_eq!(
            l.admit(peer("::ffff:10.0.0.1", 4)).err(),
            Some(Rejected::PerIp)
        );
        drop(a1);
        let _a3 = l.admit(peer("10.0.0.1", 5)).unwrap();
        assert_eq!(l.live("10.0.0.1".parse().unwrap()), 2);
    }

    #[test]
    fn permits_released_on_other_threads_come_back() {
        let l = IpLimits::new(1, 10);
        let p = l.admit(peer("127.0.0.1", 1)).unwrap();
        std::thread::spawn(move || drop(p)).join().unwrap();
        assert!(l.admit(peer("127.0.0.1", 2)).is_ok());
    }

    #[test]
    fn log_limiter_lets_a_few_through_and_counts_the_rest() {
        let l = LogLimiter::default();
        let allowed = (0..100).filter(|_| l.allow().is_some()).count();
        assert_eq!(allowed, CONNECTION_LOGS_PER_SECOND as usize);
        assert_eq!(l.suppressed.get(), 100 - allowed as u64);
    }
}
