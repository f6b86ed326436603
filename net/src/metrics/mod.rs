//! Operator metrics in the Prometheus text exposition format (0.0.4),
//! served over plain HTTP at `/metrics` by a helper thread
//! (`--metrics-listen`).
//!
//! Cheap on the hot path: every counter is a `Cell` owned by one shard
//! (no atomics, no sharing). A scrape asks each shard, over a bounded
//! flume channel that a task on the shard awaits, for a [`Report`]: its
//! counters, its partitions' offsets and sizes, its cache and write-behind
//! figures, and whatever collectors were registered on it. The HTTP thread
//! merges the reports (samples with the same name and labels are summed)
//! and renders them. The shard thread never blocks on the scraper.
//!
//! Each component reports its own families: the transport its requests,
//! bytes and connections (`transport::metrics`), the shard its partitions,
//! cache and write-behind (`shard::metrics`, which assembles a shard's
//! report), the group coordinator its groups. This module is what they
//! share: the exposition model ([`exposition`]), the per-shard scrape and
//! the merge ([`scrape`]), and the HTTP server on its helper thread
//! ([`http`]).
//!
//! Registration point: [`Collectors::register`] adds a closure run on that
//! shard at every scrape, for metrics whose state lives there
//! (consumer-group lag, for one: the coordinator registers a collector on
//! the shard that owns the group).
//!
//! May import: constants. Nothing of the components it serves (they hand
//! it closures).

pub mod exposition;
pub mod http;
pub mod scrape;

use std::cell::RefCell;

pub use exposition::{Family, Kind, Sample};

/// What one shard answers a scrape with.
pub type Report = Vec<Family>;

/// Collects samples on its shard at scrape time.
pub type Collector = Box<dyn Fn(&mut Vec<Family>)>;

/// The collectors registered on one shard.
#[derive(Default)]
pub struct Collectors(RefCell<Vec<Collector>>);

impl Collectors {
    /// Runs `collector` on this shard at every scrape; its families are
    /// merged with the other shards' (samples of one name and label set
    /// are summed, so give shard-specific state distinct labels).
    pub fn register(&self, collector: Collector) {
        self.0.borrow_mut().push(collector);
    }

    pub fn run(&self, out: &mut Vec<Family>) {
        for f in self.0.borrow().iter() {
            f(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[test]
    fn registered_collectors_run_at_each_scrape() {
        let m = Collectors::default();
        let lag = Rc::new(Cell::new(7.0));
        let seen = lag.clone();
        m.register(Box::new(move |out| {
            out.push(
                Family::new("spindle_consumer_group_lag", Kind::Gauge, "lag").sample(
                    &[("group", "g"), ("topic", "t"), ("partition", "0")],
                    seen.get(),
                ),
            );
        }));
        let mut first = Vec::new();
        m.run(&mut first);
        lag.set(3.0);
        let mut second = Vec::new();
        m.run(&mut second);
        assert_eq!(first[0].samples[0].value, 7.0);
        assert_eq!(second[0].samples[0].value, 3.0, "collected fresh each time");
    }
}
