//! Append latency percentiles under flush=batch with one appender (each
//! append waits for its own fdatasync). Criterion reports means, so this
//! one records every append and prints p50/p99/p99.9 as one JSON line.
//! `SPINDLE_LATENCY_APPENDS` sets the count (default 2000).

use spindle_bench::{batch_template, bytes_mut, open, run, scratch};
use spindle_engine::{FlushMode, LogConfig};
use std::time::Instant;

fn main() {
    // `cargo bench` passes --bench; a filter that excludes us means skip.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "append_latency".contains(a.as_str())) {
        return;
    }
    let appends: usize = std::env::var("SPINDLE_LATENCY_APPENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    for size in [1024usize, 16 * 1024] {
        let template = batch_template(size);
        let dir = scratch();
        let mut lat_us = run(async move {
            let cfg = LogConfig {
                flush: FlushMode::Batch,
                ..LogConfig::default()
            };
            let log = open(dir.path(), cfg, 64 << 20).await;
            let mut lat = Vec::with_capacity(appends);
            for _ in 0..appends {
                let b = bytes_mut(&template);
                let t = Instant::now();
                log.append(b).await.expect("append");
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            log.delete().await.expect("delete");
            lat
        });
        lat_us.sort_by(f64::total_cmp);
        let p = |q: f64| lat_us[((lat_us.len() as f64 * q) as usize).min(lat_us.len() - 1)];
        println!(
            "{{\"bench\":\"append_latency\",\"flush\":\"batch\",\"batch_bytes\":{size},\"appends\":{appends},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}}}",
            p(0.50),
            p(0.99),
            p(0.999),
            lat_us[lat_us.len() - 1]
        );
    }
}
