//! `faultline inspect`: reads a capture back and says which object crossed wrong, at which byte: retried uploads, downloads, content addresses.
//!
//! Data flows one way: `pcap_reader` (records) → `packet` (TCP segments) → `reassembly` (ordered
//! streams per flow) → `exchange` (HTTP/1 exchanges, upload and download bodies kept by `body_store`) →
//! `attempts` / `content_address` / `legs` (comparisons) → `analysis` (findings, verdict) →
//! `model` (the report) → `text` / `json` (rendering; `schema` documents the JSON).
//! TLS flows of raw captures pass `tls_flow` (keys from the capture's Decryption Secrets Blocks,
//! `tls_keys`) between `reassembly` and the protocol views, so the HTTP inside is checked the
//! same way.
//!
//! HTTP/2 runs beside HTTP/1 on every flow (`flow_views`): `h2_flow` (client preface or
//! `h2c_upgrade`, one `h2::Conversation` fed in capture order) → `h2_model` (streams, GOAWAYs)
//! and `bytestream_call` (ByteStream calls) → `blobs` (each blob's Reads or Writes stitched by
//! offset across streams and connections, checked against its resource name).

use crate::direction::Leg;
use crate::http;

mod analysis;
mod annex_key;
mod attempts;
mod aws_chunked;
mod blob_layout;
mod blobs;
mod body_store;
mod bytestream_call;
#[cfg(test)]
mod capture_loss_tests;
mod connect_tunnel;
mod connection_id;
mod content_address;
mod digest;
mod download_holes;
mod evidence;
mod exchange;
mod expectations;
mod flow_views;
mod grpc_encoding;
mod gzip_input;
mod h2_flow;
mod h2_model;
#[cfg(test)]
mod h2_tests;
mod h2c_upgrade;
mod hexdump;
mod html;
mod html_timeline;
mod json;
mod leg;
mod legs;
mod manifest;
mod markdown;
mod model;
mod objects;
mod output_path;
mod p2phttp;
mod packet;
mod pcap_reader;
mod range_versions;
mod reassembly;
mod redact;
mod row_caps;
mod run_info;
mod s3;
mod s3_checksum;
mod s3_content;
mod s3_download;
mod s3_multipart;
mod s3_request;
pub mod schema;
mod segments;
mod stored;
mod target;
mod tcp_summary;
mod text;
mod timeline;
mod tls_flow;
mod tls_keys;
#[cfg(test)]
mod tunnel_tests;
mod webdav;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

pub use annex_key::Chunk;
pub use attempts::{BodyComparison, Excerpt};
pub use blobs::{BlobCall, BlobCheck};
pub use content_address::{AddressCheck, ContentAddress, HashAlgo, Scheme};
pub use exchange::{Exchange, FaultNote, Outcome, RequestBody, ResponseInfo};
pub use h2_model::{GoawayNote, H2Connection, H2Stream, ResetNote};
pub use manifest::{Entry, Manifest, ManifestError};
pub use model::{
    Attempt, AttemptGroup, CaptureInfo, ContentCheck, Expectation, ExpectationResult, FlowSummary,
    LegComparison, Move, ObjectCheck, Operation, P2pRequest, Report, S3Request, Style, Summary,
    Verdict, SCHEMA_VERSION,
};
pub use objects::{Piece, Transfer};
pub use output_path::{refuse_overwriting_inputs, write_output};
pub use pcap_reader::{FileFormat, FormatError};
pub use run_info::RunInfo;
pub use timeline::{EventKind, FlowTimeline, TimelineEvent};

use body_store::MemoryUse;
use connect_tunnel::ConnectTunnel;
use flow_views::FlowViews;
use pcap_reader::CaptureReader;
use reassembly::FlowTable;
use tls_flow::TlsLayer;

/// Which legs of a faultline capture to inspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegFilter {
    /// Only flows on the pcapng interface "client leg".
    Client,
    /// Only flows on the pcapng interface "upstream leg".
    Upstream,
    /// Every flow (the default; classic pcap has no legs).
    #[default]
    Both,
}

impl FromStr for LegFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "client" => Ok(LegFilter::Client),
            "upstream" => Ok(LegFilter::Upstream),
            "both" => Ok(LegFilter::Both),
            other => Err(format!(
                "unknown leg {other:?}: expected client, upstream or both"
            )),
        }
    }
}

impl LegFilter {
    fn admits(self, leg: Option<Leg>) -> bool {
        match self {
            LegFilter::Both => true,
            LegFilter::Client => leg == Some(Leg::Client),
            LegFilter::Upstream => leg == Some(Leg::Upstream),
        }
    }

    /// `client`, `upstream` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            LegFilter::Client => "client",
            LegFilter::Upstream => "upstream",
            LegFilter::Both => "both",
        }
    }
}

/// What to inspect.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Legs to include.
    pub leg: LegFilter,
    /// An NSS key log (`SSLKEYLOGFILE`, `[proxy.tls] keylog`) to decrypt TLS flows with, beside
    /// the secrets a capture embeds: for a capture taken by tcpdump or Wireshark. Empty: none.
    pub key_log: Vec<u8>,
}

/// The capture could not be read at all (exit status 2). Damage after a valid header is not an
/// error: the report says where reading stopped.
#[derive(Debug, Error)]
pub enum InspectError {
    /// The file could not be opened.
    #[error("capture {path}: cannot open: {source}")]
    Open {
        /// The capture path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The header is not a pcap/pcapng header.
    #[error("capture {path}: {source}")]
    Format {
        /// The capture path.
        path: PathBuf,
        /// What was wrong.
        source: FormatError,
    },
    /// `--leg client` or `--leg upstream` on a capture that names no legs (classic pcap, or a
    /// pcapng faultline did not write): nothing would be read, and saying "OK" would be a lie.
    #[error("capture {path}: --leg {leg} needs a capture that names its legs (a pcapng faultline wrote); this one names none, so nothing would be inspected. Inspect it without --leg: the legs are then inferred from its flows when they show them")]
    NoLegs {
        /// The capture path.
        path: PathBuf,
        /// The leg asked for.
        leg: &'static str,
    },
    /// A report file (`--html FILE`) that is one of the inputs: writing it would destroy the
    /// evidence, so nothing is written.
    #[error("{flag} {output}: that file is the {role} being inspected ({input}); writing the report there would overwrite it. Choose another file")]
    OutputIsInput {
        /// The report path given.
        output: PathBuf,
        /// The option that names it.
        flag: &'static str,
        /// What the input is: "capture", "manifest".
        role: &'static str,
        /// The input path given.
        input: PathBuf,
    },
}

impl InspectError {
    /// The exit status for an unreadable capture.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// Inspects the capture at `path`, streaming it from disk.
pub fn inspect_path(path: &Path, options: &InspectOptions) -> Result<Report, InspectError> {
    let file = File::open(path).map_err(|source| InspectError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    inspect_reader(BufReader::with_capacity(1 << 20, file), path, options)
}

/// Inspects a capture held in memory (tests, fuzzing).
pub fn inspect_bytes(bytes: &[u8], options: &InspectOptions) -> Result<Report, InspectError> {
    inspect_reader(bytes, Path::new("<memory>"), options)
}

fn inspect_reader<R: Read>(
    input: R,
    path: &Path,
    options: &InspectOptions,
) -> Result<Report, InspectError> {
    let input = gzip_input::uncompressed(input).map_err(|source| InspectError::Format {
        path: path.to_path_buf(),
        source: FormatError::Io(source),
    })?;
    let mut reader = CaptureReader::new(input).map_err(|source| InspectError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    if options.leg != LegFilter::Both && reader.format() == FileFormat::Pcap {
        // Classic pcap has no interfaces: refused before reading a large file for nothing.
        return Err(InspectError::NoLegs {
            path: path.to_path_buf(),
            leg: options.leg.as_str(),
        });
    }
    let memory = MemoryUse::default();
    // TLS flows of raw captures are decrypted with the keys the capture embeds (tls_flow.rs).
    let keys = tls_keys::TlsKeys::default();
    keys.add(&options.key_log);
    // Flows of legs left out by `--leg` are still read, so a flow keeps its number whichever
    // legs are inspected, and so are their HTTP/1 request heads (no bodies, no HTTP/2): their
    // exchanges become placeholders that keep every exchange's number the same too.
    let mut table: FlowTable<TlsLayer<FlowViews>> = FlowTable::new();
    let mut finished = Vec::new();
    let mut hidden = Vec::new();
    let mut h2_flows = Vec::new();
    let mut segments = 0u64;
    let mut timelines = Vec::new();
    let admits = |info: &reassembly::FlowInfo| {
        options
            .leg
            .admits(leg::of_interface(info.interface.as_deref()))
    };
    let mut make = |info: &reassembly::FlowInfo| {
        let views = if admits(info) {
            FlowViews::new(info, memory.clone())
        } else {
            FlowViews::numbering_only(info, memory.clone())
        };
        let tunnel = ConnectTunnel::new(info, keys.clone(), memory.clone(), admits(info));
        TlsLayer::new(views.following_tunnels(tunnel), keys.clone(), info)
    };
    let mut done = |info: reassembly::FlowInfo, flow: TlsLayer<FlowViews>| {
        let undecrypted = flow.undecrypted();
        let (mut flow, tls_warnings) = flow.finish();
        if !admits(&info) {
            let (http, _) = flow.finish(&info);
            hidden.extend(http.exchanges.into_iter().map(Exchange::placeholder));
            return;
        }
        timelines.push(flow.take_timeline());
        let (mut http, h2) = flow.finish(&info);
        http.warnings.extend(tls_warnings);
        http.undecrypted = undecrypted;
        h2_flows.extend(h2);
        finished.push((info, http));
    };
    // Packets per link type `decode` cannot read: said in the report, never skipped in silence.
    let mut unsupported = std::collections::BTreeMap::new();
    let mut named_legs = false;
    let mut truncated_packets = 0u64;
    // Whether the first section says faultline wrote it (its header is read on opening), and
    // (first packet number, count) of packets whose TCP checksum is wrong.
    let faultline_written = reader
        .section_comments()
        .iter()
        .any(|c| c.starts_with("faultline "));
    let mut bad_checksums: Option<(u64, u64)> = None;
    while let Some(p) = reader.next_packet() {
        named_legs |= leg::of_interface(p.interface).is_some();
        truncated_packets += u64::from(p.truncated);
        if !p.secrets.is_empty() {
            keys.add(p.secrets);
        }
        if !packet::is_supported(p.linktype) {
            *unsupported.entry(p.linktype).or_insert(0u64) += 1;
            continue;
        }
        let admitted = options.leg.admits(leg::of_interface(p.interface));
        let Some(segment) = packet::decode(p.linktype, p.data) else {
            continue;
        };
        // faultline writes every checksum right: a wrong one in its capture is damage to the
        // file, whose bytes are no evidence (read as missing, so the verdict is INCONCLUSIVE).
        if faultline_written
            && !p.truncated
            && packet::tcp_checksum_ok(p.linktype, p.data) == Some(false)
        {
            bad_checksums.get_or_insert((reader.packets(), 0)).1 += 1;
            continue;
        }
        segments += u64::from(admitted);
        table.segment(
            reassembly::CapturedOn {
                section: p.section,
                interface: p.interface,
            },
            p.ts_nanos,
            &segment,
            p.comment,
            &mut make,
            &mut done,
        );
    }
    table.finish_all(&mut done);
    if options.leg != LegFilter::Both && !named_legs && reader.packets() > 0 {
        return Err(InspectError::NoLegs {
            path: path.to_path_buf(),
            leg: options.leg.as_str(),
        });
    }
    let capture = CaptureInfo {
        path: path.display().to_string(),
        format: match reader.format() {
            FileFormat::Pcap => "pcap",
            FileFormat::Pcapng => "pcapng",
        },
        sections: reader.sections(),
        packets: reader.packets(),
        tcp_segments: segments,
        damage: reader.damage().map(str::to_owned),
        truncated_packets,
    };
    let mut report = analysis::build_with_h2(capture, options.leg, finished, hidden, h2_flows);
    if reader.is_snapshot() {
        report.warnings.push(
            "this capture is a copy served while its run went on (GET /faultline/proxies/NAME/capture): transfers in flight then end where it ends".to_string(),
        );
    }
    if let Some((first, count)) = bad_checksums {
        report.warnings.push(format!(
            "the capture file was damaged after faultline wrote it: {} (the first is packet {first}); their bytes are read as missing",
            match count {
                1 => "1 packet fails its TCP checksum".to_string(),
                n => format!("{n} packets fail their TCP checksums"),
            }
        ));
    }
    for (linktype, packets) in unsupported {
        report.warnings.push(format!(
            "{packets} packet(s) on link type {linktype} skipped: inspect reads Ethernet, raw IP, Linux cooked (SLL) and loopback captures"
        ));
    }
    let comments = reader.section_comments();
    let mut runs = RunInfo::runs_from_section_comments(comments).into_iter();
    report.run = runs.next();
    report.other_runs = runs.collect();
    report.warnings.extend(several_runs(&report, comments));
    timelines.sort_by_key(|t| t.flow);
    report.timelines = timelines;
    Ok(report)
}

/// The warning for a capture that holds several runs (or was merged from several captures), whose
/// run block would otherwise name only the first without a word.
fn several_runs(report: &Report, comments: &[String]) -> Option<String> {
    let named = |run: &RunInfo| format!("scenario {:?} seed {}", run.scenario, run.seed);
    if !report.other_runs.is_empty() {
        let all: Vec<String> = report
            .run
            .iter()
            .chain(&report.other_runs)
            .map(named)
            .collect();
        return Some(format!(
            "the capture holds {} faultline runs ({}): the run block names the first, the others are listed after it; flows and findings are those of all of them",
            all.len(),
            all.join("; ")
        ));
    }
    let files = RunInfo::merged_files(comments);
    (files.len() > 1).then(|| {
        format!(
            "the capture was merged from {} files by mergecap ({}), which keeps only the first file's section comments: the run block names {}, the runs of the others are not recorded; flows and findings are those of all of them",
            files.len(),
            files.join(", "),
            report.run.as_ref().map_or("no run".to_string(), named)
        )
    })
}

#[cfg(test)]
mod link_type_tests {
    use super::*;

    /// A capture on a link type `inspect` cannot decode (802.11 here) said "OK: 0 uploads" and
    /// nothing else.
    #[test]
    fn packets_on_a_link_type_inspect_cannot_read_are_a_warning() {
        let mut pcap = Vec::new();
        for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 105] {
            pcap.extend_from_slice(&word.to_le_bytes());
        }
        for _ in 0..2 {
            for word in [0u32, 0, 4, 4] {
                pcap.extend_from_slice(&word.to_le_bytes());
            }
            pcap.extend_from_slice(b"wifi");
        }
        let report = inspect_bytes(&pcap, &InspectOptions::default()).expect("readable");
        assert_eq!(report.capture.packets, 2);
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.starts_with("2 packet(s) on link type 105 skipped")),
            "{:?}",
            report.warnings
        );
        assert!(report
            .render_text()
            .contains("warning: 2 packet(s) on link type 105"));
        // Classic pcap names no legs: `--leg` would read nothing, so it is refused.
        let refused = inspect_bytes(
            &pcap,
            &InspectOptions {
                leg: LegFilter::Upstream,
                key_log: Vec::new(),
            },
        )
        .expect_err("no legs to pick from");
        assert_eq!(refused.exit_code(), 2);
        assert!(
            refused.to_string().contains("--leg upstream needs"),
            "{refused}"
        );
    }
}
