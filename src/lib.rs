//! faultline: a transparent TCP chaos proxy that makes network failures happen on purpose,
//! reproducibly, so data-losing retry bugs can be shown byte for byte.
//!
//! Linux only: zero-copy relaying uses splice(2), exact resets use `SIOCOUTQ`, and the behaviour
//! of half-closes and resets is tested on Linux. Elsewhere the crate builds (the Linux-only parts
//! are gated by `cfg(target_os = "linux")` with a fallback) but is not supported.
//!
//! Crate map (data flows one way, top to bottom):
//! - [`scenario`]: scenario files: schema, units, validation with `FILE:LINE:COL`, matching.
//! - [`session`]: protocol sessions (HTTP/1): map framing to payload streams, arm rules; pure.
//! - [`fault`]: the one fault engine: pure rewriters that turn "bytes arrived" into a plan.
//! - [`proxy`]: accept loop, connections and pumps: the only code that waits and writes.
//! - [`http`]: HTTP/1.x message framing over raw bytes (never re-serializes).
//! - [`h2`]: HTTP/2 frames, read-only HPACK, streams, gRPC and ByteStream messages (pure, no I/O).
//! - [`capture`]: synthesized TCP flows of both legs, written as pcapng/pcap.
//! - [`inspect`]: reads captures back and says which retry differed from which attempt.
//! - [`builtin`]: upstreams faultline can start itself (`builtin:echo`); [`store`] is the
//!   built-in HTTP store (`builtin:store`, `faultline serve-store`).
//! - [`demo`]: the end-to-end demonstration behind `faultline demo`.
//! - [`tls`]: TLS interception: the CA, minted leaves, ClientHello peeking, key log.
//! - [`plural`]: counted nouns in user-facing text (`1 upload`, `2 uploads`).
//! - [`direction`], [`units`], [`seed`], [`utc`]: shared vocabulary (directions and legs, sizes
//!   and durations, reproducible random streams, calendar dates).

/// `println!` for command output that may go to a closed pipe (`faultline inspect F | head`):
/// a reader that went away is not an error worth a panic; any other write error (a full disk)
/// is kept for [`stdout_error`], so the command can fail instead of exiting 0 with half a report.
#[macro_export]
macro_rules! say {
    () => {{
        use std::io::Write as _;
        $crate::note_stdout(writeln!(std::io::stdout()));
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::note_stdout(writeln!(std::io::stdout(), $($arg)*));
    }};
}

/// `print!` counterpart of [`say!`].
#[macro_export]
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::note_stdout(write!(std::io::stdout(), $($arg)*));
    }};
}

/// The first error writing to stdout, other than a reader that went away.
static STDOUT_ERROR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Keeps `result`'s error for [`stdout_error`] unless it is a closed pipe. A CI trial's
/// `inspect --json > full-disk/r.json` wrote 8 KiB of 31 and exited 0.
pub fn note_stdout(result: std::io::Result<()>) {
    if let Err(e) = result {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = STDOUT_ERROR.set(e.to_string());
        }
    }
}

/// Flushes stdout and returns the first error any output met (see [`say!`]), if one did.
pub fn stdout_error() -> Option<&'static str> {
    use std::io::Write as _;
    note_stdout(std::io::stdout().flush());
    STDOUT_ERROR.get().map(String::as_str)
}

pub mod api;
pub mod builtin;
pub mod capture;
pub mod demo;
pub mod direction;
pub mod fault;
pub mod h2;
pub mod http;
pub mod inspect;
pub mod plural;
pub mod proxy;
pub mod scenario;
pub mod seed;
pub mod session;
pub mod shell;
pub mod store;
pub mod tls;
pub mod units;
pub mod utc;
