//! Command-line definitions (clap): what the user typed, nothing more. Part of the binary, not the
//! library: the library never sees clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use faultline::inspect::LegFilter;
use faultline::scenario::schema::UpstreamSpec;

/// faultline: a transparent TCP chaos proxy that makes network failures happen on purpose,
/// reproducibly, driven by scenario files.
#[derive(Debug, Parser)]
#[command(name = "faultline", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log line format on stderr: text (colored only on a terminal, never with NO_COLOR set) or
    /// json (one object per line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy with a scenario until Ctrl-C or SIGTERM, then print a summary
    /// (connections, bytes each direction, how often each rule fired).
    Run(RunArgs),
    /// Validate scenario files: exit 0 when all are valid, 2 with FILE:LINE:COL: key: message
    /// for the first error of each bad file.
    Check {
        /// Scenario files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show faultline's main job end to end on built-in defaults, with no setup: the built-in
    /// store, built-in upload clients and a shipped scenario; ends with the inspection verdicts.
    Demo {
        /// Tell the TCP story instead (echo connections reset, truncated, slowed).
        #[arg(long)]
        tcp: bool,
    },
    /// Read a capture back: reassemble flows, list HTTP exchanges, compare retried uploads byte
    /// for byte and check bodies against content addresses in their URLs. Exit 0 when clean, 1
    /// when corruption or a content-address mismatch is found, 2 when the capture cannot be read.
    #[command(after_long_help = faultline::inspect::SCHEMA)]
    Inspect(InspectArgs),
    /// Run the built-in HTTP store on its own: PUT/POST store the body at the path under DIR,
    /// GET/HEAD serve it. A valid DVC HTTP remote; never writes outside DIR; atomic writes.
    ServeStore {
        /// Folder to store uploads in (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on (port 0 picks a free port; the real address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

/// Arguments of `faultline run`. Flags override the scenario file, which overrides defaults.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file (TOML); see scenarios/README.md for the schema.
    pub scenario: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:3030 (port 0 picks a free port; the real address
    /// is printed). Overrides [proxy] listen.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Upstream HOST:PORT, builtin:echo or builtin:store. Overrides [proxy] upstream.
    #[arg(long)]
    pub upstream: Option<UpstreamSpec>,
    /// Seed of every random decision. Overrides the file's seed; without either, a random seed
    /// is chosen and printed so the run can be replayed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write a capture of both legs to PATH (.pcapng, or .pcap for classic libpcap; {name},
    /// {time} and {pid} are expanded). Overrides [proxy] capture.
    #[arg(long, value_name = "PATH", conflicts_with = "no_capture")]
    pub capture: Option<String>,
    /// Folder where `builtin:store` keeps uploads. Overrides [proxy] store.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Do not capture, even if the scenario asks for it.
    #[arg(long)]
    pub no_capture: bool,
    /// When the proxy stops, inspect the capture it wrote (as `faultline inspect`) and exit 1
    /// if it shows corruption.
    #[arg(long)]
    pub inspect: bool,
}

/// Arguments of `faultline inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A pcap or pcapng file (faultline's own, or any capture of plain TCP).
    pub capture: PathBuf,
    /// Print the report as JSON (schema in `--help`).
    #[arg(long)]
    pub json: bool,
    /// Which legs of a faultline capture to read: client, upstream or both.
    #[arg(long, default_value = "both")]
    pub leg: LegFilter,
}
