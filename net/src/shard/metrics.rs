//! The shard's report to a scrape: the transport's families, its own
//! (partition logs' offsets, sizes and poison, the batch cache, the
//! write-behind budget), then the collectors registered on it.

use std::rc::Rc;

use super::Shard;
use crate::metrics::{scrape, Family, Kind, Report};
use crate::transport;

/// The report of the shard this runs on.
pub fn report(shard: &Shard) -> Report {
    let mut out = Vec::new();
    transport::metrics::families(shard, &mut out);
    partition_families(shard, &mut out);
    shard.collectors.run(&mut out);
    out
}

/// Answers the HTTP thread's scrapes on this shard.
pub fn serve_scrapes(shard: &Rc<Shard>, rx: scrape::ScrapeRx) {
    let shard = shard.clone();
    scrape::serve_scrapes(rx, move || report(&shard));
}

fn partition_families(shard: &Shard, out: &mut Report) {
    let gauge = |name: &str, help: &str| Family::new(name, Kind::Gauge, help);
    let mut size = gauge(
        "spindle_partition_log_size_bytes",
        "Bytes in the partition's segments.",
    );
    let mut start = gauge("spindle_partition_log_start_offset", "First offset kept.");
    let mut end = gauge(
        "spindle_partition_log_end_offset",
        "Next offset to be assigned.",
    );
    let mut hw = gauge(
        "spindle_partition_high_watermark",
        "Next offset readers can see (durable under flush=batch).",
    );
    let mut poisoned = gauge(
        "spindle_partition_poisoned",
        "1 if a failed write or fsync stopped the partition's appends until reopened.",
    );
    for ((topic, p), log) in shard.open_logs() {
        let p = p.to_string();
        let l = [("topic", topic.as_str()), ("partition", p.as_str())];
        size.push(&l, log.size_bytes() as f64);
        start.push(&l, log.log_start_offset() as f64);
        end.push(&l, log.log_end_offset() as f64);
        hw.push(&l, log.high_watermark() as f64);
        poisoned.push(&l, if log.is_poisoned() { 1.0 } else { 0.0 });
    }
    out.extend([size, start, end, hw, poisoned]);
    let cache = shard.cache_stats();
    out.push(
        Family::new(
            "spindle_batch_cache_hits_total",
            Kind::Counter,
            "Reads served from the batch cache.",
        )
        .sample(&[], cache.hits as f64),
    );
    out.push(
        Family::new(
            "spindle_batch_cache_misses_total",
            Kind::Counter,
            "Reads the batch cache could not serve.",
        )
        .sample(&[], cache.misses as f64),
    );
    out.push(
        gauge(
            "spindle_batch_cache_bytes",
            "Bytes held by the batch caches.",
        )
        .sample(&[], cache.bytes as f64),
    );
    let wb = shard.write_budget();
    out.push(
        gauge(
            "spindle_write_behind_bytes",
            "Appended bytes not yet handed to the disk.",
        )
        .sample(&[], wb.used_bytes() as f64),
    );
    out.push(
        gauge(
            "spindle_write_behind_budget_bytes",
            "The write-behind budget (--write-behind-mb, all shards).",
        )
        .sample(&[], wb.bytes_max() as f64),
    );
}

/// Lifetime hit ratio of the batch caches, from the merged counters.
pub fn cache_hit_ratio(fams: &[Family]) -> Option<Family> {
    let total = |name: &str| {
        fams.iter()
            .find(|f| f.name == name)
            .map(|f| f.samples.iter().map(|s| s.value).sum::<f64>())
    };
    let (hits, misses) = (
        total("spindle_batch_cache_hits_total")?,
        total("spindle_batch_cache_misses_total")?,
    );
    let ratio = if hits + misses > 0.0 {
        hits / (hits + misses)
    } else {
        0.0
    };
    Some(
        Family::new(
            "spindle_batch_cache_hit_ratio",
            Kind::Gauge,
            "Batch cache hits over lookups since start.",
        )
        .sample(&[], ratio),
    )
}
