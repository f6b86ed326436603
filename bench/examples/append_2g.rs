//! 2 GiB of 1 MiB appends under flush=never on one log, the same volume
//! as fio's sequential write run; prints MB/s including the final flush.
use spindle_bench::{batch_template, bytes_mut, open, run, scratch};
use spindle_engine::{FlushMode, LogConfig};
use std::time::{Duration, Instant};
fn main() {
    let size = 1usize << 20;
    let total = 2usize << 30;
    let template = batch_template(size);
    let dir = scratch();
    run(async move {
        let cfg = LogConfig {
            flush: FlushMode::Never,
            segment_bytes_max: 256 << 20,
            ..LogConfig::default()
        };
        let log = open(dir.path(), cfg, 64 << 20).await;
        let mut copy = Duration::ZERO;
        let t = Instant::now();
        for _ in 0..total / size {
            let c = Instant::now();
            let b = bytes_mut(&template);
            copy += c.elapsed();
            log.append(b).await.expect("append");
        }
        log.flush().await.expect("flush");
        let e = t.elapsed() - copy;
        println!(
            "engine 2 GiB of 1 MiB appends, flush=never: {:.0} MB/s",
            total as f64 / e.as_secs_f64() / 1e6
        );
        log.delete().await.expect("delete");
    });
}
