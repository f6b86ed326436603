//! `spindle`: the broker binary. See `spindle --help`.

use clap::CommandFactory;

/// jemalloc keeps freed memory for reuse: request buffers of a few MiB
/// come and go with every produce request, and glibc's malloc handed them
/// back to the kernel and faulted them in again each time (a fifth of the
/// broker's CPU under a 1 KiB-record produce load).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use spindle_net::config::{Config, Settings};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let matches = Settings::command().get_matches();
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
