//! A scrape: every shard is asked, over a bounded queue a task on the
//! shard awaits, for its report; the reports are merged (samples of one
//! name and label set summed), families derived from the merged whole are
//! added, and the lot is rendered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::exposition::{render, Family, Kind};
use super::Report;
use crate::constants::{METRICS_IO_TIMEOUT_MS, METRICS_QUEUE_CAPACITY};

/// Requests the HTTP thread sends a shard.
pub type ScrapeTx = flume::Sender<flume::Sender<Report>>;
pub type ScrapeRx = flume::Receiver<flume::Sender<Report>>;

pub fn scrape_channel() -> (ScrapeTx, ScrapeRx) {
    flume::bounded(METRICS_QUEUE_CAPACITY)
}

/// Answers scrapes on the current shard with `report` until the HTTP
/// thread is gone.
pub fn serve_scrapes(rx: ScrapeRx, report: impl Fn() -> Report + 'static) {
    glommio::spawn_local(async move {
        while let Ok(reply) = rx.recv_async().await {
            let _ = reply.send(report());
        }
    })
    .detach();
}

/// A family computed from the merged reports of every shard (state that
/// spans shards, as a ratio of sums or a group's lag on a partition kept
/// elsewhere).
pub type Derived = fn(&[Family]) -> Option<Family>;

/// A sample's full name and labels.
type SampleKey = (String, Vec<(String, String)>);

/// Merges the shards' reports: families by name in first-seen order,
/// samples of one name and label set summed.
pub fn merge(reports: Vec<Report>) -> Vec<Family> {
    let mut order: Vec<String> = Vec::new();
    let mut fams: BTreeMap<String, (Family, BTreeMap<SampleKey, f64>)> = BTreeMap::new();
    for report in reports {
        for f in report {
            let entry = fams.entry(f.name.clone()).or_insert_with(|| {
                order.push(f.name.clone());
                (
                    Family {
                        samples: Vec::new(),
                        ..f.clone()
                    },
                    BTreeMap::new(),
                )
            });
            for s in f.samples {
                let key = (s.name.clone(), s.labels.clone());
                if !entry.1.contains_key(&key) {
                    entry.0.samples.push(s.clone());
                }
                *entry.1.entry(key).or_insert(0.0) += s.value;
            }
        }
    }
    order
        .into_iter()
        .filter_map(|name| fams.remove(&name))
        .map(|(mut f, sums)| {
            for s in &mut f.samples {
                s.value = sums[&(s.name.clone(), s.labels.clone())];
            }
            f
        })
        .collect()
}

/// Asks every shard for its report (bounded wait) and renders the lot.
pub fn scrape(shards: &[ScrapeTx], derived: &[Derived]) -> String {
    let deadline = Instant::now() + Duration::from_millis(METRICS_IO_TIMEOUT_MS);
    let mut waiting = Vec::with_capacity(shards.len());
    for tx in shards {
        let (reply, rx) = flume::bounded(1);
        if tx.send_deadline(reply, deadline).is_ok() {
            waiting.push(rx);
        }
    }
    let mut reports = Vec::with_capacity(shards.len());
    for rx in waiting {
        if let Ok(r) = rx.recv_deadline(deadline) {
            reports.push(r);
        }
    }
    let missing = shards.len() - reports.len();
    let mut fams = merge(reports);
    for d in derived {
        fams.extend(d(&fams));
    }
    fams.push(
        Family::new(
            "spindle_scrape_shards_missing",
            Kind::Gauge,
            "Shards that did not answer this scrape in time.",
        )
        .sample(&[], missing as f64),
    );
    render(&fams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_merge_by_name_and_labels() {
        let a = vec![Family::new("x_total", Kind::Counter, "x")
            .sample(&[("k", "1")], 2.0)
            .sample(&[("k", "2")], 1.0)];
        let b = vec![
            Family::new("x_total", Kind::Counter, "x").sample(&[("k", "1")], 3.0),
            Family::new("y", Kind::Gauge, "y").sample(&[], 7.5),
        ];
        let text = render(&merge(vec![a, b]));
        assert_eq!(
            text,
            "# HELP x_total x\n# TYPE x_total counter\nx_total{k=\"1\"} 5\nx_total{k=\"2\"} 1\n\
             # HELP y y\n# TYPE y gauge\ny 7.5\n"
        );
    }
}
