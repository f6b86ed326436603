//! The coordinator's families for `/metrics`: committed offsets, members
//! per group and groups per state from each shard, and the lag computed
//! after the shards' reports are merged.

use std::collections::BTreeMap;

use super::GroupCoordinator;
use crate::metrics::{Family, Kind, Sample};

impl GroupCoordinator {
    /// Metrics of the groups coordinated here, for `/metrics`: committed
    /// offsets (the scrape turns them into lag against the partitions'
    /// high watermarks), members per group, groups per state.
    pub fn collect(&self, out: &mut Vec<Family>) {
        let mut committed = Family::new(
            "spindle_consumer_group_committed_offset",
            Kind::Gauge,
            "Last committed offset of a group on a partition.",
        );
        let mut members = Family::new(
            "spindle_consumer_group_members",
            Kind::Gauge,
            "Members of a consumer group.",
        );
        let mut states: BTreeMap<&'static str, u64> = Default::default();
        for (gid, e) in self.entries.borrow().iter() {
            *states.entry(e.group.state.name()).or_default() += 1;
            members.push(&[("group", gid)], e.group.members.len() as f64);
            for ((t, p), c) in &e.offsets {
                let p = p.to_string();
                let labels = [
                    ("group", gid.as_str()),
                    ("topic", t.as_str()),
                    ("partition", &p),
                ];
                committed.push(&labels, c.value.offset as f64);
            }
        }
        let mut groups = Family::new(
            "spindle_consumer_groups",
            Kind::Gauge,
            "Consumer groups by state.",
        );
        for state in [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
        ] {
            groups.push(
                &[("state", state)],
                states.get(state).copied().unwrap_or(0) as f64,
            );
        }
        out.extend([committed, members, groups]);
    }
}

/// Consumer-group lag per partition: the partition's high watermark
/// minus the group's committed offset (partitions and groups may live on
/// different shards, so this is taken from the merged reports).
pub fn group_lag(fams: &[Family]) -> Option<Family> {
    let find = |name: &str| fams.iter().find(|f| f.name == name);
    let committed = find("spindle_consumer_group_committed_offset")?;
    let hw = find("spindle_partition_high_watermark")?;
    let label = |s: &Sample, k: &str| {
        s.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let hws: BTreeMap<(String, String), f64> = hw
        .samples
        .iter()
        .map(|s| ((label(s, "topic"), label(s, "partition")), s.value))
        .collect();
    let mut lag = Family::new(
        "spindle_consumer_group_lag",
        Kind::Gauge,
        "Records a group has yet to consume on a partition: high watermark minus committed offset.",
    );
    for s in &committed.samples {
        let (g, t, p) = (label(s, "group"), label(s, "topic"), label(s, "partition"));
        if let Some(h) = hws.get(&(t.clone(), p.clone())) {
            lag.push(
                &[("group", &g), ("topic", &t), ("partition", &p)],
                (h - s.value).max(0.0),
            );
        }
    }
    Some(lag)
}
