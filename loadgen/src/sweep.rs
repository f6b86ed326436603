//! `loadgen sweep`: open-loop runs at rising rates; the answer is the
//! highest rate whose latency percentile stays under the target while the
//! broker keeps up with the offered rate, and the step where that broke.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use crate::cli::RunArgs;
use crate::config::{parse_duration, Mode, RunSpec};
use crate::run::execute;
use crate::stats::percentiles;

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// First rate, messages/s.
    #[arg(long = "start-rate", default_value_t = 10_000.0)]
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    #[arg(long = "step-factor", default_value_t = 1.5)]
    pub step_factor: f64,
    #[arg(long = "max-steps", default_value_t = 20)]
    pub max_steps: u32,
    /// Length of each step (after its warm-up).
    #[arg(long = "step-duration", value_parser = parse_duration, default_value = "10s")]
    pub step_duration: Duration,
    #[arg(long = "step-warmup", value_parser = parse_duration, default_value = "2s")]
    pub step_warmup: Duration,
    /// Latency target in milliseconds.
    #[arg(long = "latency-target-ms", default_value_t = 10.0)]
    pub latency_target_ms: f64,
    /// Percentile the target applies to (50, 95, 99, 99.9).
    #[arg(long, default_value_t = 99.0)]
    pub percentile: f64,
    /// Which latency: publish or e2e.
    #[arg(long, default_value = "publish")]
    pub latency: String,
    /// A step whose achieved rate is below this share of the offered rate
    /// breaks, whatever its latency.
    #[arg(long = "min-rate-ratio", default_value_t = 0.95)]
    pub min_rate_ratio: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub latency_ms: f64,
    pub errors: u64,
    pub pass: bool,
    pub why: String,
}

/// Judges one step.
pub fn judge(
    target_rate: f64,
    achieved: f64,
    latency_ms: f64,
    errors: u64,
    a: &SweepArgs,
) -> (bool, String) {
    if errors > 0 {
        return (false, format!("{errors} errors"));
    }
    if achieved < target_rate * a.min_rate_ratio {
        return (
            false,
            format!(
                "achieved {achieved:.0} msg/s < {:.0}% of offered",
                a.min_rate_ratio * 100.0
            ),
        );
    }
    if latency_ms > a.latency_target_ms {
        return (
            false,
            format!(
                "p{} {latency_ms:.3} ms > {} ms",
                a.percentile, a.latency_target_ms
            ),
        );
    }
    (true, "ok".into())
}

pub fn sweep(base: RunSpec, a: &SweepArgs) -> Result<(Vec<Step>, String)> {
    if a.start_rate.is_nan()
        || a.start_rate <= 0.0
        || a.step_factor.is_nan()
        || a.step_factor <= 1.0
        || a.max_steps == 0
    {
        bail!("--start-rate > 0, --step-factor > 1 and --max-steps >= 1 are needed");
    }
    if !(0.0..=100.0).contains(&a.percentile) {
        bail!("--percentile must be within 0..=100");
    }
    let e2e = match a.latency.as_str() {
        "publish" => false,
        "e2e" => true,
        _ => bail!("--latency must be publish or e2e"),
    };
    let mut steps = Vec::new();
    let mut rate = a.start_rate;
    for i in 0..a.max_steps {
        let mut spec = base.clone();
        spec.mode = if e2e { Mode::E2e } else { Mode::Produce };
        spec.throughput = rate;
        spec.duration = Some(a.step_duration);
        spec.warmup = a.step_warmup;
        spec.num_records = None;
        spec.name = format!("{}-step{i}", base.name);
        eprintln!("sweep: step {i}: {rate:.0} msg/s for {:?}", a.step_duration);
        let o = execute(&spec)?;
        let h = if e2e { &o.e2e } else { &o.publish };
        let lat = if h.is_empty() {
            f64::INFINITY
        } else {
            h.value_at_quantile(a.percentile / 100.0) as f64 / 1000.0
        };
        let achieved = o.measured_acked as f64 / o.measured_s;
        let (pass, why) = judge(rate, achieved, lat, o.errors, a);
        let p = percentiles(h);
        eprintln!(
            "sweep: step {i}: achieved {achieved:.0} msg/s, p50 {:.3} p99 {:.3} max {:.3} ms: {}",
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            if pass { "holds" } else { &why }
        );
        steps.push(Step {
            target_rate: rate,
            achieved_rate: achieved,
            latency_ms: lat,
            errors: o.errors,
            pass,
            why,
        });
        if !pass {
            break;
        }
        rate *= a.step_factor;
    }
    let text = sweep_table(&steps, a);
    Ok((steps, text))
}

pub fn sweep_table(steps: &[Step], a: &SweepArgs) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:>14} {:>14} {:>12} {:>8}  verdict",
        "offered msg/s",
        "achieved",
        format!("p{} ms", a.percentile),
        "errors"
    );
    for s in steps {
        let _ = writeln!(
            t,
            "{:>14.0} {:>14.0} {:>12.3} {:>8}  {}",
            s.target_rate, s.achieved_rate, s.latency_ms, s.errors, s.why
        );
    }
    match (
        steps.iter().rev().find(|s| s.pass),
        steps.iter().find(|s| !s.pass),
    ) {
        (Some(ok), Some(bad)) => {
            let _ = writeln!(
                t,
                "highest rate holding p{} < {} ms ({}): {:.0} msg/s; breaks at {:.0} msg/s ({})",
                a.percentile,
                a.latency_target_ms,
                a.latency,
                ok.achieved_rate,
                bad.target_rate,
                bad.why
            );
        }
        (Some(ok), None) => {
            let _ = writeln!(
                t,
                "every step held p{} < {} ms; highest tried {:.0} msg/s (raise --max-steps to find the break)",
                a.percentile, a.latency_target_ms, ok.achieved_rate
            );
        }
        (None, _) => {
            let _ = writeln!(
                t,
                "even the first step ({:.0} msg/s) broke the target; lower --start-rate",
                a.start_rate
            );
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        s: SweepArgs,
    }

    #[test]
    fn verdicts_and_table() {
        let a = T::try_parse_from(["x", "--latency-target-ms", "5"])
            .unwrap()
            .s;
        assert_eq!(a.percentile, 99.0);
        assert!(judge(1000.0, 990.0, 4.0, 0, &a).0);
        assert!(!judge(1000.0, 900.0, 4.0, 0, &a).0);
        assert!(!judge(1000.0, 1000.0, 6.0, 0, &a).0);
        assert!(!judge(1000.0, 1000.0, 1.0, 3, &a).0);
        let steps = vec![
            Step {
                target_rate: 1000.0,
                achieved_rate: 1000.0,
                latency_ms: 1.0,
                errors: 0,
                pass: true,
                why: "ok".into(),
            },
            Step {
                target_rate: 1500.0,
                achieved_rate: 1490.0,
                latency_ms: 2.0,
                errors: 0,
                pass: true,
                why: "ok".into(),
            },
            Step {
                target_rate: 2250.0,
                achieved_rate: 2200.0,
                latency_ms: 9.0,
                errors: 0,
                pass: false,
                why: "p99 9.000 ms > 5 ms".into(),
            },
        ];
        let t = sweep_table(&steps, &a);
        assert!(
            t.contains(
                "highest rate holding p99 < 5 ms (publish): 1490 msg/s; breaks at 2250 msg/s"
            ),
            "{t}"
        );
    }
}
