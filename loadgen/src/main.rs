#![recursion_limit = "256"]
//! loadgen: Spindle's load generator. It speaks the Kafka protocol itself
//! (message types and the record-batch format from the shared codec), so
//! one tool drives Spindle, upstream Kafka, Redpanda or any compatible
//! broker.
//!
//! Threads, not an io_uring runtime: each producer is one connection with a
//! writer thread (generate, batch, writev) and a reader thread (responses),
//! each consumer one thread with blocking fetches. On a 2-core machine the
//! broker under test needs the cores more than loadgen does; blocking
//! sockets cost no polling, batch many records per syscall, and leave the
//! 8 MiB locked-memory budget to the broker's io_uring rings. Architecture
//! invariant: loadgen never links spindle-engine or spindle-net.

mod batch;
mod cli;
mod client;
mod config;
mod conn;
mod consumer;
mod cpu;
mod omb;
mod partitioner;
mod payload;
mod plan;
mod producer;
mod report;
mod run;
mod stats;
mod svg;
mod sweep;
mod window;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

use cli::{default_spec, Cli, Command, RunArgs};
use config::{Mode, RunSpec};
use loadgen::child_broker::{self, ChildBroker, Launch};

/// Lines of the broker's output kept for error messages.
const BROKER_LOG_LINES_MAX: usize = 200;

fn main() {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Starts the embedded broker (a `spindle` child process on a port of its
/// choosing, data in a temporary directory) when no bootstrap was given,
/// and stops it with SIGTERM when the run is over.
fn with_broker<T>(
    spec: &mut RunSpec,
    args: &RunArgs,
    f: impl FnOnce(&RunSpec) -> Result<T>,
) -> Result<T> {
    if !spec.bootstrap.is_empty() {
        return f(spec);
    }
    let bin = child_broker::find_spindle()?;
    let base = child_broker::default_data_base();
    let data = child_broker::real_fs_tempdir(&base, "loadgen-spindle-")?;
    let launch = Launch {
        bin: bin.clone(),
        data_dir: data.path().to_path_buf(),
        args: args.spindle_args.clone(),
        env: Vec::new(),
        log_lines_max: BROKER_LOG_LINES_MAX,
    };
    let mut broker = ChildBroker::start(launch, "127.0.0.1:0")?;
    eprintln!(
        "loadgen: embedded spindle ({}) listening on {}",
        bin.display(),
        broker.addr()
    );
    spec.bootstrap = broker.addr().to_string();
    spec.broker_pid = broker.pid();
    let r = f(spec);
    let stopped = broker.stop();
    if let Ok(status) = &stopped {
        if !status.success() {
            eprintln!("loadgen: embedded spindle exited with {status}");
        }
    }
    let r = r?;
    stopped?;
    Ok(r)
}

fn results_dir(args: &RunArgs, spec: &RunSpec) -> Option<PathBuf> {
    if args.no_results {
        return None;
    }
    Some(
        args.results_dir
            .clone()
            .unwrap_or_else(|| report::default_results_dir(&spec.name)),
    )
}

fn run_and_report(mut spec: RunSpec, args: &RunArgs) -> Result<i32> {
    spec.validate()?;
    let outcome = with_broker(&mut spec, args, run::execute)?;
    let text = report::summary(&outcome);
    print!("{text}");
    if let Some(dir) = results_dir(args, &outcome.spec) {
        report::write_results(&dir, &outcome, &text, &command_line())?;
        eprintln!("loadgen: results in {}", dir.display());
    }
    let counts_agree = outcome.spec.mode != Mode::E2e
        || outcome.consumed
            == outcome.acked * u64::from(outcome.spec.subscriptions_per_topic.max(1));
    if !outcome.failures.is_empty() || outcome.errors > 0 || !counts_agree {
        if !counts_agree {
            eprintln!(
                "loadgen: consumed {} records but {} were acknowledged",
                outcome.consumed, outcome.acked
            );
        }
        return Ok(2);
    }
    Ok(0)
}

/// What bare `loadgen` runs: the default spec sized to show a broker's
/// capacity rather than one Java-default producer's window (which caps
/// a run at in-flight bytes / latency): two producers, 32 requests in
/// flight, 256 KiB batches.
fn default_workload() -> RunSpec {
    let mut s = default_spec();
    s.producers_per_topic = 2;
    s.producer.max_in_flight = 32;
    s.producer.batch_bytes = 256 * 1024;
    s
}

fn real_main(cli: Cli) -> Result<i32> {
    match cli.command {
        None => {
            let spec = cli.run.apply(default_workload(), None)?;
            run_and_report(spec, &cli.run)
        }
        Some(Command::Produce(a)) => {
            run_and_report(a.apply(default_spec(), Some(Mode::Produce))?, &a)
        }
        Some(Command::Consume(a)) => {
            let mut base = default_spec();
            base.consumer.from = config::StartFrom::Earliest;
            run_and_report(a.apply(base, Some(Mode::Consume))?, &a)
        }
        Some(Command::E2e(a)) => run_and_report(a.apply(default_spec(), Some(Mode::E2e))?, &a),
        Some(Command::Run { workload, run }) => {
            let w = omb::load(&workload)?;
            let spec = w.apply(default_spec())?;
            // Flags after the file override it (e.g. a shorter --duration).
            let spec = run.apply(spec, None)?;
            run_and_report(spec, &run)
        }
        Some(Command::Sweep(a)) => {
            let mut spec = a.run.apply(default_spec(), Some(Mode::Produce))?;
            if a.run.duration.is_none() && a.run.num_records.is_none() {
                spec.duration = Some(a.step_duration);
            }
            spec.report_interval = a.run.report_interval.map_or(
                std::time::Duration::ZERO,
                std::time::Duration::from_secs_f64,
            );
            spec.validate()?;
            let (steps, text) = with_broker(&mut spec, &a.run, |s| sweep::sweep(s.clone(), &a))?;
            print!("{text}");
            if !a.run.no_results {
                let dir = a
                    .run
                    .results_dir
                    .clone()
                    .unwrap_or_else(|| report::default_results_dir("sweep"));
                std::fs::create_dir_all(&dir)?;
                std::fs::write(
                    dir.join("sweep.json"),
                    serde_json::to_string_pretty(&steps)?,
                )?;
                std::fs::write(
                    dir.join("sweep.txt"),
                    format!("$ {}\n{text}", command_line()),
                )?;
                let pts: Vec<(f64, f64)> = steps
                    .iter()
                    .map(|s| (s.target_rate, s.latency_ms))
                    .collect();
                let title = format!("p{} {} latency by offered rate", a.percentile, a.latency);
                std::fs::write(
                    dir.join("sweep.svg"),
                    svg::line_chart(&title, "offered msgs/s", "ms", &[("latency", pts)], false),
                )?;
                eprintln!("loadgen: sweep results in {}", dir.display());
            }
            Ok(0)
        }
        Some(Command::Plan(a)) => {
            print!("{}", plan::run(&a)?);
            Ok(0)
        }
    }
}
