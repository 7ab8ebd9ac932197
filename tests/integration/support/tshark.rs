//! Runs tshark on capture files and parses its answers, for tests that check captures like a user would.
//!
//! Every helper panics with tshark's stderr when tshark cannot read the file at all: in a test that is
//! the failure we want to see. Files truncated mid-record are the exception: tshark exits 2 after
//! reading every complete packet, so helpers do not insist on exit status 0 (use `packet_count` to see it).
#![allow(dead_code)] // shared by several test binaries; each uses only some helpers

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The tshark binary. A missing tshark fails the test, everywhere (not only in CI): a capture test
/// that passes by skipping its checks proves nothing. `make test` installs tshark.
pub fn tshark() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("tshark"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("tshark is required by the capture tests: run `make test` (it installs tshark) or apt-get install tshark")
        })
}

/// What one tshark run printed.
pub struct Output {
    /// Exit status: 2 when the file ends mid-record, yet `stdout` has every complete packet.
    pub status: ExitStatus,
    /// What tshark printed.
    pub stdout: String,
    /// Warnings (e.g. "Running as user root") and read errors.
    pub stderr: String,
}

/// Runs `tshark -r FILE ARGS...`; panics if tshark is missing or printed nothing and failed.
pub fn run(path: &Path, args: &[&str]) -> Output {
    let bin = tshark();
    let out = Command::new(bin)
        .arg("-r")
        .arg(path)
        .args(args)
        .output()
        .expect("run tshark");
    let output = Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if !output.status.success() && output.stdout.is_empty() {
        panic!(
            "tshark -r {} {:?} failed: {}",
            path.display(),
            args,
            output.stderr
        );
    }
    output
}

/// `-T fields` output: one row per packet (matching `filter`, if any), one column per field.
pub fn fields(path: &Path, filter: Option<&str>, names: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-T", "fields", "-E", "separator=/t"];
    if let Some(f) = filter {
        args.extend(["-Y", f]);
    }
    for name in names {
        args.extend(["-e", name]);
    }
    run(path, &args)
        .stdout
        .lines()
        .map(|line| line.split('\t').map(String::from).collect())
        .collect()
}

/// Number of packets tshark could read, and its exit status (2 when the file ends mid-record).
pub fn packet_count(path: &Path) -> (usize, ExitStatus) {
    let out = run(path, &["-T", "fields", "-e", "frame.number"]);
    (out.stdout.lines().count(), out.status)
}

/// One row of `-z conv,tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// `address:port` of side A, as tshark prints it (IPv6 without brackets).
    pub a: String,
    /// `address:port` of side B.
    pub b: String,
    /// Frames in both directions.
    pub frames: u64,
}

/// TCP conversations (`-z conv,tcp`). A reused 4-tuple appears once per connection.
pub fn conversations(path: &Path) -> Vec<Conversation> {
    run(path, &["-q", "-z", "conv,tcp"])
        .stdout
        .lines()
        .filter(|line| line.contains("<->"))
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // a <-> b  frames bytes [unit] frames bytes [unit] total_frames ...
            let nums: Vec<u64> = cols[3..].iter().filter_map(|c| c.parse().ok()).collect();
            Conversation {
                a: cols[0].to_string(),
                b: cols[2].to_string(),
                frames: nums.get(4).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// Payload of TCP stream `stream` (`-z follow,tcp,raw,N`): (bytes sent by node 0, bytes sent by node 1).
///
/// Node 0 is the side of the stream's first packet, i.e. the initiator when the capture has the SYN.
/// tshark indents node 1's hex lines with a tab.
pub fn follow_raw(path: &Path, stream: usize) -> (Vec<u8>, Vec<u8>) {
    let spec = format!("follow,tcp,raw,{stream}");
    let out = run(path, &["-q", "-z", &spec]).stdout;
    let mut sides = (Vec::new(), Vec::new());
    let mut in_body = false;
    for line in out.lines() {
        if line.starts_with("Node 1:") {
            in_body = true;
            continue;
        }
        if !in_body || line.starts_with("====") {
            continue;
        }
        let target = if line.starts_with('\t') {
            &mut sides.1
        } else {
            &mut sides.0
        };
        decode_hex(line.trim(), target);
    }
    sides
}

fn decode_hex(hex: &str, out: &mut Vec<u8>) {
    let digits = hex.as_bytes();
    assert!(
        digits.len() % 2 == 0,
        "odd hex line from tshark follow: {hex}"
    );
    for pair in digits.chunks(2) {
        let text = std::str::from_utf8(pair).expect("ascii hex");
        out.push(u8::from_str_radix(text, 16).expect("hex digit from tshark follow"));
    }
}

/// Expert summaries of severity Warning or Error, except the "Connection reset (RST)" warning that
/// every injected reset produces, with checksum validation on. Each entry is `GROUP PROTOCOL SUMMARY
/// xCOUNT in FRAMES`, FRAMES naming where (see `frames_with_message`).
///
/// `extra` is passed to tshark, e.g. `["--disable-protocol", "http"]` when payloads are not HTTP but
/// travel on a port tshark decodes as HTTP (8080): random bytes there give "Illegal characters" warnings.
pub fn expert_problems_with(path: &Path, extra: &[&str]) -> Vec<String> {
    let mut settings = vec![
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
    ];
    settings.extend_from_slice(extra);
    let mut args = vec!["-q", "-z", "expert"];
    args.extend_from_slice(&settings);
    let out = run(path, &args).stdout;
    let mut problems = Vec::new();
    let mut serious = false;
    for line in out.lines() {
        let heading = line.split_whitespace().next().unwrap_or("");
        if line.contains('(') && !line.starts_with(' ') {
            serious = matches!(heading, "Errors" | "Warns" | "Warnings");
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !serious || cols.len() < 4 || cols[0].parse::<u64>().is_err() {
            continue;
        }
        let summary = cols[1..].join(" ");
        if !summary.ends_with("Connection reset (RST)") {
            let frames = frames_with_message(path, &settings, &cols[3..].join(" "));
            problems.push(format!("{} x{} in {frames}", summary, cols[0]));
        }
    }
    problems
}

/// Where an expert message was raised, so a failure says which streams and ports to look at
/// (e.g. an ephemeral port that tshark decodes as another protocol): up to 5 frames as
/// `frame N (tcp.stream S, SRC -> DST, PROTOCOLS)`. `settings`: the expert run's options.
fn frames_with_message(path: &Path, settings: &[&str], message: &str) -> String {
    let escaped = message.replace('\\', "\\\\").replace('"', "\\\"");
    let filter = format!("_ws.expert.message == \"{escaped}\"");
    let mut query = settings.to_vec();
    query.extend(["-Y", &filter, "-T", "fields", "-E", "separator=/t"]);
    for field in [
        "frame.number",
        "tcp.stream",
        "tcp.srcport",
        "tcp.dstport",
        "frame.protocols",
    ] {
        query.extend(["-e", field]);
    }
    let out = run(path, &query).stdout;
    let rows: Vec<String> = out
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let at = |i: usize| f.get(i).copied().unwrap_or("?");
            format!(
                "frame {} (tcp.stream {}, {} -> {}, {})",
                at(0),
                at(1),
                at(2),
                at(3),
                at(4)
            )
        })
        .collect();
    match rows.len() {
        0 => "no frame tshark could filter".to_string(),
        n if n > 5 => format!("{} and {} more", rows[..5].join(", "), n - 5),
        _ => rows.join(", "),
    }
}

/// `expert_problems_with` and no extra arguments.
pub fn expert_problems(path: &Path) -> Vec<String> {
    expert_problems_with(path, &[])
}

/// Packets with the RST flag.
pub fn rst_count(path: &Path) -> usize {
    fields(path, Some("tcp.flags.reset == 1"), &["frame.number"]).len()
}

/// pcapng packet comments in file order (`frame.comment`, tshark 4.0's field name).
pub fn packet_comments(path: &Path) -> Vec<String> {
    fields(path, Some("frame.comment"), &["frame.comment"])
        .into_iter()
        .flatten()
        .collect()
}

/// The pcapng section comment, read with capinfos (installed with tshark); `None` when absent.
pub fn section_comment(path: &Path) -> Option<String> {
    let capinfos = tshark().with_file_name("capinfos");
    let out = Command::new(capinfos)
        .arg("-k")
        .arg(path)
        .output()
        .expect("run capinfos");
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.strip_prefix("Capture comment:")
            .map(|c| c.trim().to_string())
    })
}
