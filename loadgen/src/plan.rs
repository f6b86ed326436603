//! `loadgen plan`: turns a target load and measured capacity into brokers,
//! cores, disk and network, printing every step of the arithmetic.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Produced MB/s (1 MB = 10^6 bytes) the cluster must take.
    #[arg(long = "in-mbps")]
    pub in_mbps: f64,
    /// Consumed MB/s (all consumer groups together).
    #[arg(long = "out-mbps")]
    pub out_mbps: f64,
    #[arg(long = "message-size", default_value_t = 1024)]
    pub message_size: u64,
    #[arg(long = "retention-hours", default_value_t = 24.0)]
    pub retention_hours: f64,
    #[arg(long = "replication-factor", default_value_t = 3)]
    pub replication_factor: u32,
    /// Share of every resource kept free (0.3 = plan for 70% use).
    #[arg(long, default_value_t = 0.3)]
    pub headroom: f64,
    /// A loadgen result.json whose throughput per core is the capacity.
    #[arg(long)]
    pub measured: Option<PathBuf>,
    /// Or give the capacity directly: MB/s (in + out) one broker core serves.
    #[arg(long = "per-core-mbps")]
    pub per_core_mbps: Option<f64>,
    #[arg(long = "cores-per-broker", default_value_t = 16)]
    pub cores_per_broker: u32,
    /// Sustained disk write MB/s of one broker.
    #[arg(long = "disk-mbps-per-broker", default_value_t = 1000.0)]
    pub disk_mbps_per_broker: f64,
    #[arg(long = "nic-gbps", default_value_t = 25.0)]
    pub nic_gbps: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    pub brokers: u64,
    pub cores_total: f64,
    pub disk_tb_total: f64,
    pub disk_tb_per_broker: f64,
    pub net_in_gbps_per_broker: f64,
    pub net_out_gbps_per_broker: f64,
    pub bound_by: String,
}

/// Capacity from a loadgen result.json: (publish + consume MB/s) over the
/// cores of the machine it ran on. Broker and loadgen shared those cores,
/// so this understates a dedicated broker; the plan says so.
pub fn per_core_from_result(json: &serde_json::Value) -> Result<(f64, String)> {
    let lg = json
        .get("loadgen")
        .context("result.json has no loadgen section")?;
    let f = |k: &str| lg.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let cores = lg
        .get("machine")
        .and_then(|m| m.get("cores"))
        .and_then(|c| c.as_f64())
        .filter(|c| *c > 0.0)
        .context("result.json has no machine cores")?;
    let total = f("publishMBPerSec") + f("consumeMBPerSec");
    if total <= 0.0 {
        bail!("result.json shows no throughput");
    }
    let per = total / cores;
    Ok((
        per,
        format!(
            "measured: {:.1} MB/s in + {:.1} MB/s out on {cores} cores (broker and loadgen together) = {per:.1} MB/s per core",
            f("publishMBPerSec"),
            f("consumeMBPerSec")
        ),
    ))
}

pub fn plan(a: &PlanArgs, per_core_mbps: f64, out: &mut String) -> Result<Plan> {
    if !(a.in_mbps >= 0.0 && a.out_mbps >= 0.0 && per_core_mbps > 0.0) {
        bail!("rates must be >= 0 and capacity > 0");
    }
    if !(0.0..0.95).contains(&a.headroom) {
        bail!("--headroom must be in 0..0.95");
    }
    if a.replication_factor == 0 || a.cores_per_broker == 0 || a.message_size == 0 {
        bail!("replication factor, cores per broker and message size must be >= 1");
    }
    let rf = f64::from(a.replication_factor);
    let use_share = 1.0 - a.headroom;
    let msgs = a.in_mbps * 1e6 / a.message_size as f64;
    let _ = writeln!(
        out,
        "messages in      = {:.1} MB/s / {} B = {:.0} msg/s",
        a.in_mbps, a.message_size, msgs
    );
    let write = a.in_mbps * rf;
    let _ = writeln!(
        out,
        "disk writes      = {:.1} MB/s x RF {} = {:.1} MB/s (cluster)",
        a.in_mbps, rf, write
    );
    let repl = a.in_mbps * (rf - 1.0);
    let _ = writeln!(
        out,
        "replication      = {:.1} MB/s x (RF-1) = {:.1} MB/s broker to broker",
        a.in_mbps, repl
    );
    let served = a.in_mbps + a.out_mbps + 2.0 * repl;
    let _ = writeln!(
        out,
        "broker work      = in {:.1} + out {:.1} + replication sent+received 2 x {:.1} = {:.1} MB/s",
        a.in_mbps, a.out_mbps, repl, served
    );
    let cores = served / per_core_mbps / use_share;
    let _ = writeln!(
        out,
        "cores            = {served:.1} / {per_core_mbps:.1} MB/s per core / {use_share:.2} (headroom {:.0}%) = {cores:.1}",
        a.headroom * 100.0
    );
    let retention_s = a.retention_hours * 3600.0;
    let disk_tb = write * retention_s / 1e6 / use_share;
    let _ = writeln!(
        out,
        "disk             = {write:.1} MB/s x {retention_s:.0} s / {use_share:.2} = {disk_tb:.2} TB (cluster)"
    );
    let nic_mbps = a.nic_gbps * 1e9 / 8.0 / 1e6;
    let net_in = a.in_mbps + repl;
    let net_out = a.out_mbps + repl;
    let by_cores = (cores / f64::from(a.cores_per_broker)).ceil();
    let by_disk = (write / (a.disk_mbps_per_broker * use_share)).ceil();
    let by_net = (net_in.max(net_out) / (nic_mbps * use_share)).ceil();
    let by_rf = rf;
    let _ = writeln!(
        out,
        "brokers by cores = ceil({cores:.1} / {}) = {by_cores}",
        a.cores_per_broker
    );
    let _ = writeln!(
        out,
        "brokers by disk  = ceil({write:.1} / ({:.0} MB/s x {use_share:.2})) = {by_disk}",
        a.disk_mbps_per_broker
    );
    let _ = writeln!(
        out,
        "brokers by net   = ceil(max(in {net_in:.1}, out {net_out:.1}) / ({nic_mbps:.0} MB/s x {use_share:.2})) = {by_net}"
    );
    let _ = writeln!(out, "brokers by RF    = {by_rf}");
    let candidates = [
        ("cores", by_cores),
        ("disk throughput", by_disk),
        ("network", by_net),
        ("replication factor", by_rf),
    ];
    let (bound_by, brokers) =
        candidates.iter().fold(
            ("", 0.0f64),
            |acc, &(n, v)| if v > acc.1 { (n, v) } else { acc },
        );
    let brokers = brokers.max(1.0);
    let p = Plan {
        brokers: brokers as u64,
        cores_total: cores,
        disk_tb_total: disk_tb,
        disk_tb_per_broker: disk_tb / brokers,
        net_in_gbps_per_broker: net_in / brokers * 8.0 / 1000.0,
        net_out_gbps_per_broker: net_out / brokers * 8.0 / 1000.0,
        bound_by: bound_by.to_string(),
    };
    let _ = writeln!(
        out,
        "=> {} brokers (bound by {}), {:.1} cores in all ({} per broker), {:.2} TB disk per broker, network {:.2} Gb/s in / {:.2} Gb/s out per broker",
        p.brokers, p.bound_by, p.cores_total, a.cores_per_broker, p.disk_tb_per_broker, p.net_in_gbps_per_broker, p.net_out_gbps_per_broker
    );
    Ok(p)
}

pub fn run(a: &PlanArgs) -> Result<String> {
    let mut out = String::new();
    let per_core = match (a.per_core_mbps, &a.measured) {
        (Some(p), _) => {
            let _ = writeln!(out, "capacity given: {p:.1} MB/s per core");
            p
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            let json: serde_json::Value =
                serde_json::from_str(&text).context("parse result.json")?;
            let (p, why) = per_core_from_result(&json)?;
            let _ = writeln!(out, "{why}");
            p
        }
        (None, None) => bail!("give --measured result.json (a loadgen run) or --per-core-mbps"),
    };
    plan(a, per_core, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        p: PlanArgs,
    }

    #[test]
    fn arithmetic() {
        let a = T::try_parse_from([
            "x",
            "--in-mbps",
            "100",
            "--out-mbps",
            "300",
            "--replication-factor",
            "3",
            "--headroom",
            "0.5",
            "--cores-per-broker",
            "4",
            "--retention-hours",
            "1",
        ])
        .unwrap()
        .p;
        let mut out = String::new();
        let p = plan(&a, 50.0, &mut out).unwrap();
        // work = 100 + 300 + 2*200 = 800 MB/s; cores = 800/50/0.5 = 32.
        assert!((p.cores_total - 32.0).abs() < 1e-9, "{out}");
        assert_eq!(p.brokers, 8);
        assert_eq!(p.bound_by, "cores");
        // disk = 300 MB/s * 3600 s / 0.5 = 2.16 TB.
        assert!((p.disk_tb_total - 2.16).abs() < 1e-9);
        assert!(out.contains("=> 8 brokers (bound by cores)"));
        let small = T::try_parse_from(["x", "--in-mbps", "1", "--out-mbps", "1"])
            .unwrap()
            .p;
        assert_eq!(
            plan(&small, 100.0, &mut String::new()).unwrap().brokers,
            3,
            "RF bounds a small cluster"
        );
        assert!(plan(&small, 0.0, &mut String::new()).is_err());
    }

    #[test]
    fn capacity_from_result_json() {
        let j = serde_json::json!({"loadgen": {"publishMBPerSec": 150.0, "consumeMBPerSec": 50.0, "machine": {"cores": 2}}});
        assert_eq!(per_core_from_result(&j).unwrap().0, 100.0);
        assert!(per_core_from_result(&serde_json::json!({})).is_err());
    }
}
