//! `spindle topic|group|cluster|produce|consume`: an admin CLI that speaks
//! the Kafka protocol only (requests encoded and responses decoded with
//! the `kafka-protocol` types the codec re-exports), so it works against
//! any Kafka-compatible broker, Spindle or Kafka. It is a library that the
//! `spindle` binary calls when its first argument names a subcommand; it
//! links neither the engine nor the server, so it could ship alone.
//!
//! - [`cli`]: the command line (clap), every value checked before sending.
//! - [`conn`], [`versions`]: one blocking connection, ApiVersions
//!   negotiation (the highest version both sides speak).
//! - [`client`]: metadata, leaders, coordinators, offsets by time.
//! - [`cmd`]: one module per command family.
//! - [`records`]: record batches in and out (headers, compression), with
//!   kafka-protocol's batch codec.
//! - [`output`], [`error`]: tables or JSON; exit codes by failure class.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod conn;
pub mod error;
pub mod group_offsets;
pub mod output;
pub mod records;
pub mod time;
pub mod versions;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command, DEFAULT_BOOTSTRAP};
use crate::client::Client;
use crate::error::{AdminError, EXIT_USAGE};
use crate::output::Format;

/// First arguments that make `spindle` an admin command instead of the
/// broker. `acl` and `user` are reserved for the security work.
pub const SUBCOMMANDS: &[&str] = &[
    "topic", "group", "cluster", "produce", "consume", "acl", "user",
];

/// Whether `spindle <first>` is an admin command.
pub fn is_subcommand(first: &str) -> bool {
    SUBCOMMANDS.contains(&first)
}

/// Runs `spindle <subcommand> ...` (`args[0]` is the program name) and
/// returns the exit code; messages go to stderr.
pub fn run(args: Vec<OsString>) -> ExitCode {
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if first == "acl" || first == "user" {
            eprintln!(
                "error: `spindle {first}` is not available yet: it comes with TLS, SASL and ACLs (the security work)"
            );
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        // Help and version print to stdout and exit 0, usage errors exit 2.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
        }
    };
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What every command gets: where to connect and how to print.
pub struct Ctx {
    pub bootstrap: String,
    pub format: Format,
    pub timeout: Duration,
}

impl Ctx {
    pub fn connect(&self) -> Result<Client, AdminError> {
        Client::connect(&self.bootstrap, self.timeout)
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

fn execute(cli: Cli) -> Result<(), AdminError> {
    let bootstrap = cli
        .global
        .bootstrap
        .or_else(|| {
            std::env::var("SPINDLE_BOOTSTRAP")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
    let ctx = Ctx {
        bootstrap,
        format: cli.global.format,
        timeout: Duration::from_millis(cli.global.timeout_ms.max(1)),
    };
    match cli.command {
        Command::Topic(c) => cmd::topic::run(&ctx, c),
        Command::Group(c) => cmd::group::run(&ctx, c),
        Command::Cluster(c) => cmd::cluster::run(&ctx, c),
        Command::Produce(a) => cmd::produce::run(&ctx, a),
        Command::Consume(a) => cmd::consume::run(&ctx, a),
    }
}
