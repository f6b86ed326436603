//! Reports: the live line, the final summary (kafka-producer-perf-test's
//! line first), and the results directory (result.json with OMB's field
//! names, .hgrm percentile files, SVG plots, index.html).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::config::{Mode, RunSpec};
use crate::cpu::CPU_WARN_CORES;
use crate::run::{Outcome, Sample};
use crate::stats::{percentiles, CounterSnapshot, Percentiles};
use crate::svg;

/// Distinct error messages seen, with counts (bounded).
static ERRORS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
const DISTINCT_ERRORS_MAX: usize = 64;

pub fn note_error(msg: &str) {
    if let Ok(mut m) = ERRORS.lock() {
        if let Some(n) = m.get_mut(msg) {
            *n += 1;
        } else if m.len() < DISTINCT_ERRORS_MAX {
            m.insert(msg.to_string(), 1);
        }
    }
}

pub fn error_summary() -> Vec<(String, u64)> {
    ERRORS
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default()
}

const MIB: f64 = 1024.0 * 1024.0;

/// One line per interval: rates, errors, backlog and the interval's
/// latency; a progress bar when the run has a fixed size.
pub fn live_line(spec: &RunSpec, s: &Sample, snap: &CounterSnapshot, elapsed: Duration) -> String {
    let mut line = format!("[{:>6.1}s]", s.t_s);
    if spec.warmup > elapsed {
        line.push_str(" warm-up");
    }
    if spec.mode != Mode::Consume {
        let _ = write!(
            line,
            " pub {:>10.0} msg/s {:>8.2} MB/s p50 {:.3} p99 {:.3} max {:.3} ms |",
            s.publish_rate, s.publish_mb_s, s.publish.p50_ms, s.publish.p99_ms, s.publish.max_ms
        );
    }
    if spec.mode != Mode::Produce {
        let _ = write!(
            line,
            " cons {:>10.0} msg/s {:>8.2} MB/s",
            s.consume_rate, s.consume_mb_s
        );
        if spec.mode == Mode::E2e {
            let _ = write!(
                line,
                " e2e p50 {:.3} p99 {:.3} max {:.3} ms",
                s.e2e.p50_ms, s.e2e.p99_ms, s.e2e.max_ms
            );
        }
        if spec.mode == Mode::E2e {
            let _ = write!(line, " backlog {}", s.backlog);
        }
    }
    let _ = write!(line, " err {}", s.errors);
    if let Some(n) = spec.num_records {
        let done = if spec.mode == Mode::Consume {
            snap.consumed_msgs
        } else {
            snap.acked_msgs
        };
        let frac = (done as f64 / n.max(1) as f64).clamp(0.0, 1.0);
        let filled = (frac * 20.0) as usize;
        let _ = write!(
            line,
            " [{}{}] {:>3.0}%",
            "#".repeat(filled),
            ".".repeat(20 - filled),
            frac * 100.0
        );
    }
    line
}

/// kafka-producer-perf-test's closing line, to the same format (its
/// percentiles are whole milliseconds; the table below has the fractions).
pub fn perf_test_line(records: u64, bytes: u64, elapsed_s: f64, h: &Histogram<u64>) -> String {
    let p = percentiles(h);
    let ms = |q: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q) / 1000
        }
    };
    format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        records,
        records as f64 / elapsed_s,
        bytes as f64 / elapsed_s / MIB,
        p.avg_ms,
        p.max_ms,
        ms(0.50),
        ms(0.95),
        ms(0.99),
        ms(0.999),
    )
}

pub fn latency_table(outcome: &Outcome) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency ms", "count", "avg", "p50", "p75", "p95", "p99", "p99.9", "p99.99", "max"
    );
    let mut row = |name: &str, p: Percentiles| {
        let _ = writeln!(
            t,
            "{:<12} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            name,
            p.count,
            p.avg_ms,
            p.p50_ms,
            p.p75_ms,
            p.p95_ms,
            p.p99_ms,
            p.p999_ms,
            p.p9999_ms,
            p.max_ms
        );
    };
    if outcome.spec.mode != Mode::Consume {
        row("publish", percentiles(&outcome.publish));
    }
    if outcome.spec.mode == Mode::E2e {
        row("end-to-end", percentiles(&outcome.e2e));
    }
    t
}

/// The text printed at the end of a run.
/// CPU-microseconds per record, or "-" when no record was counted.
fn per_record_us(cpu_s: f64, records: u64) -> String {
    if records == 0 {
        "-".to_string()
    } else {
        format!("{:.3} CPU-us", cpu_s * 1e6 / records as f64)
    }
}

pub fn summary(outcome: &Outcome) -> String {
    let mut s = String::new();
    let o = outcome;
    if o.spec.mode != Mode::Consume {
        let _ = writeln!(
            s,
            "{}",
            perf_test_line(
                o.measured_acked,
                o.measured_acked_bytes,
                o.measured_s,
                &o.publish
            )
        );
    }
    if o.spec.mode != Mode::Produce {
        let _ = writeln!(
            s,
            "{} records consumed, {:.1} records/sec ({:.2} MB/sec).",
            o.measured_consumed,
            o.measured_consumed as f64 / o.measured_s,
            o.measured_consumed_bytes as f64 / o.measured_s / MIB
        );
    }
    if o.spec.mode != Mode::Consume {
        s.push_str(&latency_table(o));
    }
    let _ = writeln!(
        s,
        "totals: sent {} acked {} consumed {} errors {}; measured window {:.1} s (warm-up {:.1} s left out)",
        o.sent,
        o.acked,
        o.consumed,
        o.errors,
        o.measured_s,
        o.spec.warmup.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "loadgen cpu: {:.2} cores in all, busiest thread {:.0}% of a core",
        o.cpu_cores,
        o.cpu_busiest_thread * 100.0
    );
    if let Some((cores, secs)) = o.broker_cpu {
        let _ = writeln!(
            s,
            "broker cpu: {cores:.2} cores; {} per record produced, {} per record consumed",
            per_record_us(secs, o.measured_acked),
            per_record_us(secs, o.measured_consumed),
        );
    }
    if o.cpu_cores > CPU_WARN_CORES {
        let _ = writeln!(
            s,
            "WARNING: loadgen used {:.0}% of a core (above {:.0}%): on a shared machine the client, not the broker, may be what this run measured",
            o.cpu_cores * 100.0,
            CPU_WARN_CORES * 100.0
        );
    }
    for (e, n) in error_summary() {
        let _ = writeln!(s, "error: {e} x{n}");
    }
    for f in &o.failures {
        let _ = writeln!(s, "worker failed: {f}");
    }
    s
}

/// `results/<date>-<name>/` relative to the working directory.
pub fn default_results_dir(name: &str) -> PathBuf {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    PathBuf::from("results").join(format!("{}-{}", today(), slug.trim_matches('-')))
}

/// UTC date as YYYY-MM-DD (civil-from-days, Howard Hinnant).
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// HdrHistogram's percentile distribution text (the `.hgrm` format of
/// HistogramLogProcessor / outputPercentileDistribution), values in ms.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{:>12.3} {:>14.12} {:>10} {:>14.2}",
                    value,
                    q,
                    total,
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{:>12.3} {:>14.12} {:>10}", value, q, total);
            }
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

fn quantiles_map(h: &Histogram<u64>) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if h.is_empty() {
        return m;
    }
    for q in [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999, 100.0] {
        m.insert(
            format!("{q}"),
            h.value_at_quantile(q / 100.0) as f64 / 1000.0,
        );
    }
    m
}

/// result.json: OMB's `TestResult` fields (latencies in ms, rates per
/// interval), plus loadgen's own under `loadgen`.
pub fn result_json(o: &Outcome, machine: &Machine) -> serde_json::Value {
    let p = percentiles(&o.publish);
    let e = percentiles(&o.e2e);
    let col = |f: &dyn Fn(&Sample) -> f64| o.samples.iter().map(f).collect::<Vec<f64>>();
    serde_json::json!({
        "workload": o.spec.name,
        "driver": "kafka",
        "messageSize": o.spec.record_size,
        "topics": o.spec.topics,
        "partitions": o.spec.partitions,
        "producersPerTopic": o.spec.producers_per_topic,
        "consumersPerTopic": o.spec.subscriptions_per_topic * o.spec.consumers_per_subscription,
        "publishRate": col(&|s| s.publish_rate),
        "publishErrorRate": o.samples.windows(2).map(|w| (w[1].errors - w[0].errors) as f64).collect::<Vec<_>>(),
        "consumeRate": col(&|s| s.consume_rate),
        "backlog": o.samples.iter().map(|s| s.backlog).collect::<Vec<_>>(),
        "publishLatencyAvg": col(&|s| s.publish.avg_ms),
        "publishLatency50pct": col(&|s| s.publish.p50_ms),
        "publishLatency75pct": col(&|s| s.publish.p75_ms),
        "publishLatency95pct": col(&|s| s.publish.p95_ms),
        "publishLatency99pct": col(&|s| s.publish.p99_ms),
        "publishLatency999pct": col(&|s| s.publish.p999_ms),
        "publishLatency9999pct": col(&|s| s.publish.p9999_ms),
        "publishLatencyMax": col(&|s| s.publish.max_ms),
        "aggregatedPublishLatencyAvg": p.avg_ms,
        "aggregatedPublishLatency50pct": p.p50_ms,
        "aggregatedPublishLatency75pct": p.p75_ms,
        "aggregatedPublishLatency95pct": p.p95_ms,
        "aggregatedPublishLatency99pct": p.p99_ms,
        "aggregatedPublishLatency999pct": p.p999_ms,
        "aggregatedPublishLatency9999pct": p.p9999_ms,
        "aggregatedPublishLatencyMax": p.max_ms,
        "aggregatedPublishLatencyQuantiles": quantiles_map(&o.publish),
        "endToEndLatencyAvg": col(&|s| s.e2e.avg_ms),
        "endToEndLatency50pct": col(&|s| s.e2e.p50_ms),
        "endToEndLatency75pct": col(&|s| s.e2e.p75_ms),
        "endToEndLatency95pct": col(&|s| s.e2e.p95_ms),
        "endToEndLatency99pct": col(&|s| s.e2e.p99_ms),
        "endToEndLatency999pct": col(&|s| s.e2e.p999_ms),
        "endToEndLatency9999pct": col(&|s| s.e2e.p9999_ms),
        "endToEndLatencyMax": col(&|s| s.e2e.max_ms),
        "aggregatedEndToEndLatencyAvg": e.avg_ms,
        "aggregatedEndToEndLatency50pct": e.p50_ms,
        "aggregatedEndToEndLatency75pct": e.p75_ms,
        "aggregatedEndToEndLatency95pct": e.p95_ms,
        "aggregatedEndToEndLatency99pct": e.p99_ms,
        "aggregatedEndToEndLatency999pct": e.p999_ms,
        "aggregatedEndToEndLatency9999pct": e.p9999_ms,
        "aggregatedEndToEndLatencyMax": e.max_ms,
        "aggregatedEndToEndLatencyQuantiles": quantiles_map(&o.e2e),
        "loadgen": {
            "intervalSeconds": o.spec.report_interval.as_secs_f64(),
            "recordsSent": o.sent,
            "recordsAcked": o.acked,
            "recordsConsumed": o.consumed,
            "errors": o.errors,
            "measuredSeconds": o.measured_s,
            "measuredRecordsAcked": o.measured_acked,
            "measuredBytesAcked": o.measured_acked_bytes,
            "measuredRecordsConsumed": o.measured_consumed,
            "measuredBytesConsumed": o.measured_consumed_bytes,
            "publishRecordsPerSec": o.measured_acked as f64 / o.measured_s,
            "publishMBPerSec": o.measured_acked_bytes as f64 / o.measured_s / 1e6,
            "consumeRecordsPerSec": o.measured_consumed as f64 / o.measured_s,
            "consumeMBPerSec": o.measured_consumed_bytes as f64 / o.measured_s / 1e6,
            "cpuCores": o.cpu_cores,
            "cpuBusiestThread": o.cpu_busiest_thread,
            "brokerCpuCores": o.broker_cpu.map(|c| c.0),
            "brokerCpuSeconds": o.broker_cpu.map(|c| c.1),
            "brokerCpuUsPerRecordProduced": o.broker_cpu
                .filter(|_| o.measured_acked > 0)
                .map(|c| c.1 * 1e6 / o.measured_acked as f64),
            "spec": o.spec,
            "failures": o.failures,
            "errorsByKind": error_summary(),
            "machine": machine,
            "samples": o.samples,
        }
    })
}

/// The machine a run was taken on (STYLE.md: results carry it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub filesystem: String,
    pub commit: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .map(|l| l.trim_start_matches("MemTotal:").trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let filesystem = cmd_out("df", &["-T", "."])
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        let commit = cmd_out("git", &["rev-parse", "HEAD"]).trim().to_string();
        Machine {
            cpu_model,
            cores,
            memory,
            kernel,
            filesystem,
            commit: if commit.is_empty() {
                "unknown".into()
            } else {
                commit
            },
        }
    }

    pub fn text(&self) -> String {
        format!(
            "cpu: {}\ncores: {}\nmemory: {}\nkernel: {}\nfilesystem: {}\ncommit: {}\n",
            self.cpu_model, self.cores, self.memory, self.kernel, self.filesystem, self.commit
        )
    }
}

fn cmd_out(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Writes result.json, the .hgrm files, the plots and index.html.
pub fn write_results(dir: &Path, o: &Outcome, summary_text: &str, command: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let machine = Machine::probe();
    let json = result_json(o, &machine);
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(dir.join("machine.txt"), machine.text())?;
    std::fs::write(
        dir.join("summary.txt"),
        format!("$ {command}\n{summary_text}"),
    )?;
    let mut plots = Vec::new();
    let mut spectrum = Vec::new();
    if o.spec.mode != Mode::Consume {
        std::fs::write(dir.join("publish-latency.hgrm"), hgrm(&o.publish))?;
        spectrum.push(("publish", svg::spectrum_points(&o.publish)));
    }
    if o.spec.mode == Mode::E2e {
        std::fs::write(dir.join("e2e-latency.hgrm"), hgrm(&o.e2e))?;
        spectrum.push(("end-to-end", svg::spectrum_points(&o.e2e)));
    }
    if !spectrum.is_empty() {
        std::fs::write(
            dir.join("latency-spectrum.svg"),
            svg::spectrum_chart(&spectrum),
        )?;
        plots.push("latency-spectrum.svg");
    }
    let t: Vec<f64> = o.samples.iter().map(|s| s.t_s).collect();
    let mut tput = Vec::new();
    if o.spec.mode != Mode::Consume {
        tput.push((
            "publish msg/s",
            t.iter()
                .copied()
                .zip(o.samples.iter().map(|s| s.publish_rate))
                .collect(),
        ));
    }
    if o.spec.mode != Mode::Produce {
        tput.push((
            "consume msg/s",
            t.iter()
                .copied()
                .zip(o.samples.iter().map(|s| s.consume_rate))
                .collect(),
        ));
    }
    std::fs::write(
        dir.join("throughput.svg"),
        svg::line_chart("Throughput over time", "seconds", "msgs/s", &tput, false),
    )?;
    plots.push("throughput.svg");
    let mut p99 = Vec::new();
    if o.spec.mode != Mode::Consume {
        p99.push((
            "publish p99 ms",
            t.iter()
                .copied()
                .zip(o.samples.iter().map(|s| s.publish.p99_ms))
                .collect(),
        ));
    }
    if o.spec.mode == Mode::E2e {
        p99.push((
            "end-to-end p99 ms",
            t.iter()
                .copied()
                .zip(o.samples.iter().map(|s| s.e2e.p99_ms))
                .collect(),
        ));
    }
    if !p99.is_empty() {
        std::fs::write(
            dir.join("p99.svg"),
            svg::line_chart("p99 latency over time", "seconds", "ms", &p99, false),
        )?;
        plots.push("p99.svg");
    }
    std::fs::write(
        dir.join("index.html"),
        index_html(o, summary_text, command, &machine, &plots),
    )?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn index_html(
    o: &Outcome,
    summary_text: &str,
    command: &str,
    m: &Machine,
    plots: &[&str],
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>loadgen: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}pre{{background:#f4f4f4;padding:1em;overflow-x:auto}}img{{max-width:100%}}</style>\
         </head><body>\n<h1>loadgen: {name}</h1>\n<h2>Command</h2><pre>{cmd}</pre>\n<h2>Summary</h2><pre>{sum}</pre>\n<h2>Machine</h2><pre>{mach}</pre>\n",
        name = esc(&o.spec.name),
        cmd = esc(command),
        sum = esc(summary_text),
        mach = esc(&m.text())
    );
    for p in plots {
        let _ = writeln!(h, "<h2>{p}</h2><img src=\"{p}\" alt=\"{p}\">");
    }
    h.push_str("<h2>Files</h2><ul><li><a href=\"result.json\">result.json</a> (OpenMessaging Benchmark field names)</li>");
    if o.spec.mode != Mode::Consume {
        h.push_str("<li><a href=\"publish-latency.hgrm\">publish-latency.hgrm</a></li>");
    }
    if o.spec.mode == Mode::E2e {
        h.push_str("<li><a href=\"e2e-latency.hgrm\">e2e-latency.hgrm</a></li>");
    }
    h.push_str("</ul></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn perf_test_line_has_kafkas_format() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let line = perf_test_line(1000, 1000 * 1024 * 1024, 2.0, &h);
        assert_eq!(
            line,
            "1000 records sent, 500.0 records/sec (500.00 MB/sec), 500.50 ms avg latency, 1000.45 ms max latency, 500 ms 50th, 950 ms 95th, 990 ms 99th, 999 ms 99.9th."
        );
    }

    #[test]
    fn hgrm_ends_at_total_count() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let text = hgrm(&h);
        assert!(text.contains("Total count    =         1000"));
        let last_data = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        let cols: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(cols[2], "1000");
        assert_eq!(cols[1].parse::<f64>().unwrap(), 1.0);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn results_dir_is_slugged() {
        let d = default_results_dir("1 topic / 16 partitions / 1Kb");
        let s = d.to_string_lossy();
        assert!(s.starts_with("results/"));
        assert!(s.ends_with("-1-topic---16-partitions---1kb"), "{s}");
    }
}
