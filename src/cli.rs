//! Command-line definitions (clap): what the user typed, nothing more. Part of the binary, not the
//! library: the library never sees clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use faultline::inspect::LegFilter;
use faultline::scenario::schema::{ListenAddr, UpstreamSpec};

/// faultline: a transparent TCP chaos proxy that makes network failures happen on purpose,
/// reproducibly, driven by scenario files.
#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version,
    about,
    long_about = None,
    after_help = "RUST_LOG (e.g. RUST_LOG=faultline=debug) overrides -v and -q.",
    after_long_help = "RUST_LOG (e.g. RUST_LOG=faultline=debug) overrides -v and -q.\n\n\
Exit status:\n  \
0  success (inspect: the capture is clean)\n  \
1  findings (inspect, run --inspect: CORRUPT) or a runtime failure (listen address in use, \
capture write error)\n  \
2  invalid input or setup, found before anything runs: a bad scenario, manifest or argument, a \
missing or unreadable file, no CA yet or a CA key others can read ([proxy.tls] intercept), a \
capture folder that cannot be created\n  \
3  inspect, run --inspect: INCONCLUSIVE (the capture misses payload: a snap length, gaps, a file cut short)"
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Logging")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only); RUST_LOG overrides.
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        conflicts_with = "verbose",
        help_heading = "Logging"
    )]
    pub quiet: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log line format on stderr: text (colored only on a terminal, never with NO_COLOR set) or
    /// json (one object per line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = "Logging")]
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

impl Cli {
    /// The log filter for `faultline`'s own logs: the command's usual level moved by -v/-q.
    pub fn log_level(&self) -> &'static str {
        const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
        let usual: i32 = match self.command {
            // The demo speaks for itself on stdout; its logs stay quiet unless asked.
            Command::Demo { .. } => 1,
            _ => 2,
        };
        let level = (usual + i32::from(self.verbose) - i32::from(self.quiet)).clamp(0, 4);
        LEVELS[level as usize]
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy with a scenario until Ctrl-C, SIGTERM or SIGHUP (or, given `-- COMMAND`,
    /// until COMMAND exits), then print a summary (connections, bytes each direction, how often
    /// each rule fired).
    Run(RunArgs),
    /// Validate scenario files: exit 0 when all are valid, 2 with FILE:LINE:COL: key: message
    /// for the first error of each bad file, or for what `run` would refuse on this machine (a
    /// missing or non-PEM upstream_ca, a .pcap capture with capture_tls = "raw"). Warnings
    /// (a rule that never fires, no CA yet) keep exit 0 unless --strict; `-qq` hides them, as it
    /// hides `run`'s. With JSON logs every message is a JSON line.
    Check {
        /// Scenario files to check (`-` reads one from stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Fail (exit 2) a file with warnings too, for CI steps that want none.
        #[arg(long)]
        strict: bool,
    },
    /// Show faultline's main job end to end on built-in defaults, with no setup: the built-in
    /// store, built-in upload clients and a shipped scenario; ends with the inspection verdicts.
    Demo {
        /// Tell the TCP story instead (echo connections reset, truncated, slowed).
        #[arg(long)]
        tcp: bool,
        /// Tell the gRPC story instead: one ByteStream Read reset on a shared HTTP/2 connection,
        /// read again by a resuming and a restarting reader.
        #[arg(long, conflicts_with = "tcp")]
        grpc: bool,
    },
    /// Read a capture back: reassemble flows, list HTTP exchanges, compare retried uploads byte
    /// for byte and check bodies against content addresses in their URLs. Exit 0 when clean, 1
    /// when corruption or a content-address mismatch is found, 2 when the capture cannot be read,
    /// 3 when the capture misses payload (snap length, gaps, a file cut short) and nothing
    /// corrupt was found.
    #[command(after_long_help = faultline::inspect::schema::help())]
    Inspect(InspectArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout, e.g.
    /// `faultline completions bash > ~/.local/share/bash-completion/completions/faultline`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `faultline man | man -l -`; with a subcommand,
    /// its own page (`faultline man run`, `faultline man ca init`), as SEE ALSO names them.
    Man {
        /// The subcommand whose page to print (`run`, `ca init`, …); none: faultline(1).
        subcommand: Vec<String>,
    },
    /// Run the built-in HTTP store on its own: PUT/POST store the body at the path under DIR,
    /// GET/HEAD serve it. A valid DVC HTTP remote; never writes outside DIR; atomic writes.
    ServeStore {
        /// Folder to store uploads in (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on (port 0 picks a free port; the real address is printed).
        #[arg(long, default_value = "127.0.0.1:8080", value_parser = listen_addr)]
        listen: SocketAddr,
    },
    /// Run a control API that Toxiproxy's clients drive unchanged (proxies, toxics, populate,
    /// reset, metrics) plus faultline's own routes under /faultline/ (scenarios, summaries,
    /// captures, events), until Ctrl-C, SIGTERM or SIGHUP. See docs/api.md.
    Serve(ServeArgs),
    /// Manage the CA whose certificates intercepted clients are shown (`[proxy.tls] intercept`).
    /// It lives in --dir DIR, else $FAULTLINE_CA_DIR, else $XDG_DATA_HOME/faultline/ca, else
    /// ~/.local/share/faultline/ca.
    Ca {
        /// What to do with the CA.
        #[command(subcommand)]
        command: CaCommand,
    },
}

/// `faultline ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA (ECDSA P-256, valid 10 years) unless one exists, then print its path,
    /// fingerprint and the `export` lines that make common clients trust it. Idempotent; an
    /// existing folder others can enter is tightened to 0700.
    Init {
        /// The CA folder, e.g. the `ca_dir` a scenario names (overrides $FAULTLINE_CA_DIR).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the CA certificate's path, subject, SHA-256 fingerprint and validity; exit 2 when
    /// there is no CA yet.
    Show {
        /// The CA folder (overrides $FAULTLINE_CA_DIR).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Arguments of `faultline run`. Flags override the scenario file, which overrides defaults.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario file (TOML); see scenarios/README.md for the schema.
    pub scenario: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:3030 or localhost:3030 (port 0 picks a free port;
    /// the real address is printed). Overrides [proxy] listen.
    #[arg(long, value_parser = listen_addr)]
    pub listen: Option<SocketAddr>,
    /// Upstream HOST:PORT, builtin:echo or builtin:store. Overrides [proxy] upstream.
    #[arg(long)]
    pub upstream: Option<UpstreamSpec>,
    /// Seed of every random decision (0 to 18446744073709551615). Overrides the file's seed;
    /// without either, a random seed below 2^53 is chosen and printed so the run can be replayed
    /// (it fits a scenario file's `seed =`, which TOML limits to 9223372036854775807, and JSON
    /// readers that round integers above 2^53, as jq and JavaScript do). Draws are
    /// keyed by connection number (accept order): a client that opens connections in parallel
    /// (multipart uploads) may meet its faults on other requests from run to run.
    // A negative number is taken as the value, to be refused as one (clap's own tip, `-- -1`,
    // then failed with "a value is required").
    #[arg(long, allow_negative_numbers = true)]
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
    /// if it shows corruption (3 if it misses payload, as `faultline inspect`, and 3 when no
    /// client connected or no connection reached the upstream: a clean verdict of nothing).
    #[arg(long)]
    pub inspect: bool,
    /// With --inspect: audit the capture against MANIFEST, as `faultline inspect --expect`.
    #[arg(long, value_name = "MANIFEST", requires = "inspect")]
    pub expect: Option<PathBuf>,
    /// With --inspect: also write the HTML report to FILE, as `faultline inspect --html`.
    #[arg(long, value_name = "FILE", requires = "inspect")]
    pub html: Option<PathBuf>,
    /// When the run stops, print one JSON line on stdout instead of text: {run: {scenario, seed,
    /// summary: {connections, upstream_failures, panics, bytes, unsent_at_stop, rules: [{name,
    /// fault, matched, fired, requests}], capture, text}, command: {line, status, signal,
    /// stopped} or null}, inspect: the `inspect --json` report with --inspect, else null}. A
    /// wrapped COMMAND's stdout goes to stderr then, so stdout holds only that document.
    #[arg(long)]
    pub json: bool,
    /// Run COMMAND through the proxy, e.g. `-- dvc push -r chaos`: it starts once faultline
    /// listens, with FAULTLINE_LISTEN=HOST:PORT and FAULTLINE_URL=http://HOST:PORT in its
    /// environment (`sh -c 'HTTP_PROXY=$FAULTLINE_URL dvc push'` in forward mode), and the run
    /// stops when it exits. Exit status: the command's (128+N if killed by signal N; 127 not
    /// found, 126 not runnable), or with --inspect the verdict's (the command's is printed; a
    /// run stopped before the command ended exits with the command's status if the verdict is
    /// clean).
    /// Stopping faultline sends SIGTERM to the command and every process it started (SIGKILL
    /// after 10 s, or at a second stop).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// Arguments of `faultline serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Scenario files: each becomes a proxy named by its scenario, listening where it says (a
    /// free loopback port when it does not), its rules in force.
    pub scenarios: Vec<PathBuf>,
    /// Where the API listens: localhost means 127.0.0.1 and [::1]; port 0 picks a free port (the
    /// real address is printed).
    #[arg(long, value_name = "HOST:PORT", default_value = "localhost:8474")]
    pub api: String,
    /// Proxies to create at start, in Toxiproxy's populate format (a JSON array of
    /// {name, listen, upstream, enabled}).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Capture template for proxies whose scenario names none ({name} is the proxy's name;
    /// {time}, {pid} as in `run`).
    #[arg(long, value_name = "PATH")]
    pub capture: Option<String>,
    /// Base seed: each proxy's seed derives from it and the proxy's name (a scenario's own seed
    /// wins). Without it each proxy gets a random seed, shown in its summary.
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
}

/// Arguments of `faultline inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A pcap or pcapng file (faultline's own, or any capture of plain TCP); one per run of
    /// inspect (a `captures/NAME-*.pcapng` glob that matches two files is refused).
    pub capture: PathBuf,
    /// Print the report as JSON (schema in `--help`).
    #[arg(long)]
    pub json: bool,
    /// Which legs of a faultline capture to read: client, upstream or both.
    #[arg(long, default_value = "both")]
    pub leg: LegFilter,
    /// Print a GitHub-ready Markdown summary (verdict, findings, checks, replay command) to paste
    /// into an issue, instead of the text report.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Also write the report as one self-contained HTML page to FILE (timelines per connection,
    /// attempts with their bytes, content checks, replay command; opens offline); `-` prints
    /// the page on stdout instead of the text report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Audit: compare what MANIFEST says should be stored (`PATH SIZE [DIGEST]` a line, `#`
    /// comments; DIGEST hex md5 or sha256) with the last successful upload of each PATH in the
    /// capture. A malformed line exits 2 with `MANIFEST:LINE: message`.
    #[arg(long, value_name = "MANIFEST")]
    pub expect: Option<PathBuf>,
    /// Decrypt TLS flows with this NSS key log (`SSLKEYLOGFILE`, `[proxy.tls] keylog`), beside
    /// the secrets a `capture_tls = "raw"` capture embeds: for a capture taken by tcpdump,
    /// tshark or Wireshark while faultline ran.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
}

/// `--listen`: an address or a name that resolves, as in scenario files.
fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse::<ListenAddr>().map(|l| l.0)
}
