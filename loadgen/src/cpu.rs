//! loadgen's own CPU use, from /proc: the process total (in cores) and the
//! busiest thread, so a report can say when the client, not the broker,
//! was the bottleneck.

use std::collections::HashMap;
use std::time::Instant;

/// Above this share of one core the report warns that the client may be
/// what was measured.
pub const CPU_WARN_CORES: f64 = 0.8;

#[derive(Clone)]
pub struct CpuClock {
    at: Instant,
    process_ticks: u64,
    thread_ticks: HashMap<u32, u64>,
    /// Latest ticks seen per thread: a thread that exits leaves /proc, so
    /// the run samples while its workers are alive.
    last_seen: HashMap<u32, u64>,
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime from a /proc stat line (fields 14 and 15; the command
/// name in parentheses may contain spaces, so count from the last ')').
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 -> index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn read_ticks(path: &str) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(path).ok()?)
}

fn thread_ticks() -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(t) = read_ticks(&format!("/proc/self/task/{tid}/stat")) {
                out.insert(tid, t);
            }
        }
    }
    out
}

/// CPU time of another process (the broker under test), from
/// /proc/PID/stat: cores used between `start` and `cores_since`.
#[derive(Clone)]
pub struct ProcessClock {
    pid: u32,
    at: Instant,
    ticks: u64,
}

impl ProcessClock {
    /// `None` when the process cannot be read (gone, or another user's).
    pub fn start(pid: u32) -> Option<ProcessClock> {
        Some(ProcessClock {
            pid,
            at: Instant::now(),
            ticks: read_ticks(&format!("/proc/{pid}/stat"))?,
        })
    }

    /// (cores on average, CPU seconds) since `start`.
    pub fn since(&self) -> Option<(f64, f64)> {
        let now = read_ticks(&format!("/proc/{}/stat", self.pid))?;
        let secs = now.saturating_sub(self.ticks) as f64 / ticks_per_s();
        Some((secs / self.at.elapsed().as_secs_f64().max(1e-6), secs))
    }
}

impl CpuClock {
    pub fn start() -> CpuClock {
        CpuClock {
            at: Instant::now(),
            process_ticks: read_ticks("/proc/self/stat").unwrap_or(0),
            thread_ticks: thread_ticks(),
            last_seen: HashMap::new(),
        }
    }

    /// Records the threads' ticks now (call periodically).
    pub fn sample(&mut self) {
        for (tid, t) in thread_ticks() {
            self.last_seen.insert(tid, t);
        }
    }

    /// (process cores, busiest thread cores) since `start`.
    pub fn usage_since(&mut self) -> (f64, f64) {
        self.sample();
        let wall = self.at.elapsed().as_secs_f64().max(1e-6);
        let hz = ticks_per_s();
        let now = read_ticks("/proc/self/stat").unwrap_or(self.process_ticks);
        let process = now.saturating_sub(self.process_ticks) as f64 / hz / wall;
        let busiest = self
            .last_seen
            .iter()
            .map(|(tid, t)| t.saturating_sub(self.thread_ticks.get(tid).copied().unwrap_or(0)))
            .max()
            .unwrap_or(0) as f64
            / hz
            / wall;
        (process, busiest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_name() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 0 0";
        assert_eq!(parse_stat_ticks(line), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn another_process_is_measured() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let clock = ProcessClock::start(child.id()).expect("readable");
        let mut last = (0.0, 0.0);
        // Sample until the child burned some CPU (bounded by its loop).
        for _ in 0..2000 {
            match clock.since() {
                Some(s) if s.1 > 0.0 => {
                    last = s;
                    break;
                }
                Some(s) => last = s,
                None => break,
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = child.wait();
        assert!(last.1 > 0.0, "no CPU seen for a busy child: {last:?}");
        assert!(ProcessClock::start(u32::MAX).is_none());
    }

    #[test]
    fn own_process_is_readable() {
        assert!(read_ticks("/proc/self/stat").is_some());
        assert!(!thread_ticks().is_empty());
    }
}

#[cfg(test)]
mod busy_tests {
    use super::*;

    /// A thread that burns CPU shows up as the busiest, whatever the load
    /// on the machine: it spins until its own counters moved (bounded).
    #[test]
    fn a_busy_thread_shows_up() {
        let mut c = CpuClock::start();
        let h = std::thread::spawn(|| {
            let t = Instant::now();
            let start = read_ticks("/proc/thread-self/stat").unwrap_or(0);
            let mut x = 0u64;
            while t.elapsed() < std::time::Duration::from_secs(20) {
                for _ in 0..100_000 {
                    x = x.wrapping_mul(31).wrapping_add(1);
                }
                if read_ticks("/proc/thread-self/stat").unwrap_or(0) >= start + 5 {
                    break;
                }
            }
            std::hint::black_box(x)
        });
        // Sample while the spinner is alive, then after it exited.
        while !h.is_finished() {
            c.sample();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = h.join();
        let (process, busiest) = c.usage_since();
        assert!(busiest > 0.0, "busiest {busiest}");
        assert!(process >= busiest, "process {process} busiest {busiest}");
    }
}
