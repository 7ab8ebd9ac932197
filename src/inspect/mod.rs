//! `faultline inspect`: reads a capture back and says which object crossed wrong, at which byte: retried uploads, downloads, content addresses.
//!
//! Data flows one way: `pcap_reader` (records) → `packet` (TCP segments) → `reassembly` (ordered
//! streams per flow) → `exchange` (HTTP/1 exchanges, upload and download bodies kept by `body_store`) →
//! `attempts` / `content_address` / `legs` (comparisons) → `analysis` (findings, verdict) →
//! `model` (the report) → `text` / `json` (rendering; `schema` documents the JSON).

use crate::direction::Leg;
use crate::http;

mod analysis;
mod annex_key;
mod attempts;
mod aws_chunked;
mod body_store;
mod content_address;
mod digest;
mod exchange;
mod expectations;
mod json;
mod leg;
mod legs;
mod manifest;
mod model;
mod objects;
mod p2phttp;
mod packet;
mod pcap_reader;
mod reassembly;
mod s3;
mod s3_checksum;
mod s3_content;
mod s3_multipart;
mod s3_request;
pub mod schema;
mod stored;
mod target;
mod text;
mod webdav;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

pub use annex_key::Chunk;
pub use attempts::{BodyComparison, Excerpt};
pub use content_address::{AddressCheck, ContentAddress, HashAlgo, Scheme};
pub use exchange::{Exchange, FaultNote, Outcome, RequestBody, ResponseInfo};
pub use manifest::{Entry, Manifest, ManifestError};
pub use model::{
    Attempt, AttemptGroup, CaptureInfo, ContentCheck, Expectation, ExpectationResult, FlowSummary,
    LegComparison, Move, ObjectCheck, Operation, P2pRequest, Report, S3Request, Style, Summary,
    Verdict, SCHEMA_VERSION,
};
pub use objects::{Piece, Transfer};
pub use pcap_reader::{FileFormat, FormatError};

use body_store::MemoryUse;
use exchange::FlowHttp;
use pcap_reader::CaptureReader;
use reassembly::FlowTable;

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
    let mut reader = CaptureReader::new(input).map_err(|source| InspectError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    let memory = MemoryUse::default();
    let mut table: FlowTable<FlowHttp> = FlowTable::new();
    let mut finished = Vec::new();
    let mut segments = 0u64;
    let mut make = |info: &reassembly::FlowInfo| FlowHttp::new(info, memory.clone());
    let mut done =
        |info: reassembly::FlowInfo, flow: FlowHttp| finished.push((info, flow.finish()));
    while let Some(p) = reader.next_packet() {
        if !options.leg.admits(leg::of_interface(p.interface)) {
            continue;
        }
        let Some(segment) = packet::decode(p.linktype, p.data) else {
            continue;
        };
        segments += 1;
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
    };
    Ok(analysis::build(capture, options.leg, finished))
}
