//! The producer's in-flight window: how many Produce requests may await
//! their responses on one connection (`max.in.flight`). The writer thread
//! takes a slot per request and blocks while none is free; the reader
//! thread gives it back when the response arrives.

use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use crate::stats::Shared;

/// Counts requests in flight; the writer waits on it when the window is full.
pub struct Window {
    inflight: Mutex<usize>,
    cv: Condvar,
    max: usize,
}

impl Window {
    /// At most `max` requests in flight.
    pub fn new(max: usize) -> Window {
        Window {
            inflight: Mutex::new(0),
            cv: Condvar::new(),
            max,
        }
    }

    /// Takes a slot, waiting while the window is full; fails once the run
    /// stops or the connection is broken.
    pub fn acquire(&self, shared: &Shared, broken: &Mutex<Option<String>>) -> Result<()> {
        let mut n = self
            .inflight
            .lock()
            .map_err(|_| anyhow!("window lock poisoned"))?;
        while *n >= self.max {
            if shared.stop_all.load(Ordering::Relaxed) {
                bail!("stopped");
            }
            if let Ok(b) = broken.lock() {
                if let Some(e) = b.as_ref() {
                    bail!("connection failed: {e}");
                }
            }
            let (g, _) = self
                .cv
                .wait_timeout(n, Duration::from_millis(100))
                .map_err(|_| anyhow!("window lock poisoned"))?;
            n = g;
        }
        *n += 1;
        Ok(())
    }

    /// Wakes a writer waiting for a slot, so it sees a broken connection.
    pub fn wake(&self) {
        self.cv.notify_all();
    }

    pub fn release(&self) {
        if let Ok(mut n) = self.inflight.lock() {
            *n = n.saturating_sub(1);
        }
        self.cv.notify_all();
    }

    /// Whether every request completed before `deadline`.
    pub fn drained(&self, deadline: Instant) -> bool {
        let Ok(mut n) = self.inflight.lock() else {
            return false;
        };
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.cv.wait_timeout(n, deadline - now) {
                Ok((g, _)) => n = g,
                Err(_) => return false,
            }
        }
        true
    }
}
