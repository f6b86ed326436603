//! `spindle`: the broker binary. See `spindle --help`. A first argument
//! naming an admin subcommand (`spindle topic list`, ...) runs the admin
//! CLI (`spindle-admin`) instead; anything else, flags alone included,
//! starts the broker as it always has.

use clap::CommandFactory;

/// jemalloc keeps freed memory for reuse: request buffers of a few MiB
/// come and go with every produce request, and glibc's malloc handed them
/// back to the kernel and faulted them in again each time (a fifth of the
/// broker's CPU under a 1 KiB-record produce load).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use spindle_net::config::{Config, Settings};

/// Appended to the broker's `--help`: where the admin commands are.
const ADMIN_HELP: &str = "Admin subcommands (Kafka protocol, any broker): spindle topic|group|cluster|produce|consume --help";

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(spindle_admin::is_subcommand)
    {
        return spindle_admin::run(args);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let matches = Settings::command()
        .after_help(ADMIN_HELP)
        .get_matches_from(args);
    let result = Settings::load(&matches)
        .and_then(Config::resolve)
        .and_then(spindle_net::server::run);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
