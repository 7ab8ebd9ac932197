//! The report `faultline inspect` produces, as the serde types behind `--json` (see [`super::schema`]).

use serde::Serialize;

use super::attempts::BodyComparison;
pub use super::blobs::BlobCheck;
use super::content_address::{AddressCheck, ContentAddress};
use super::exchange::Exchange;
pub use super::expectations::{Expectation, ExpectationResult};
pub use super::h2_model::{H2Connection, H2Stream};
use super::leg;
pub use super::legs::LegComparison;
pub use super::objects::ObjectCheck;
pub use super::p2phttp::P2pRequest;
pub use super::run_info::RunInfo;
pub use super::s3_request::{Operation, S3Request, Style};
use super::stored::PathState;
pub use super::timeline::FlowTimeline;
pub use super::webdav::Move;
use crate::direction::Leg;

/// JSON schema version; bumped only for incompatible changes (fields may be added within a version).
pub const SCHEMA_VERSION: u32 = 1;

/// Whether the capture shows corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No corruption found (exit status 0).
    Clean,
    /// At least one corrupt retry, content-address mismatch or faultline bug (exit status 1).
    Corrupt,
    /// Nothing corrupt in what the capture holds, but it is missing payload (the file cut short or
    /// damaged, packets cut by a snap length, bytes the capture missed where HTTP was being
    /// read): it cannot show the
    /// transfers clean (exit status 3).
    Inconclusive,
}

/// Where the evidence came from.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureInfo {
    /// The capture file as given.
    pub path: String,
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// pcapng sections read (1 for classic pcap; more for merged or concatenated captures).
    pub sections: u32,
    /// Packet records read.
    pub packets: u64,
    /// Records that decoded to a TCP segment (on the selected legs).
    pub tcp_segments: u64,
    /// Why reading stopped before the end of the file (a cut or damaged record), if it did.
    pub damage: Option<String>,
    /// Packet records captured shorter than they crossed the wire (a snap length cut them).
    pub truncated_packets: u64,
}

#[cfg(test)]
impl CaptureInfo {
    /// The capture of tests that feed flows by hand: one section, nothing read from a file.
    pub(crate) fn for_tests() -> CaptureInfo {
        CaptureInfo {
            path: "test".into(),
            format: "pcapng",
            sections: 1,
            packets: 0,
            tcp_segments: 0,
            damage: None,
            truncated_packets: 0,
        }
    }
}

/// One TCP flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowSummary {
    /// Flow id, in order of first packet, from 0: tshark's `tcp.stream` of the conversation.
    pub id: u64,
    /// Capture leg (`None`: not a faultline leg, "unknown" in JSON).
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Connecting side, `ip:port`.
    pub client: String,
    /// Accepting side, `ip:port`.
    pub server: String,
    /// First packet time, ns since the epoch.
    pub opened_ns: u64,
    /// True when its SYN was captured.
    pub saw_syn: bool,
    /// True when it carried HTTP/1.
    pub http: bool,
    /// Ids of its exchanges.
    pub exchanges: Vec<usize>,
    /// Fault comments on its packets.
    pub faults: Vec<String>,
    /// True when it carried HTTP/2 (see `h2_connections`).
    pub h2: bool,
    /// faultline's connection ordinal, when the flow's initial sequence number names it (see
    /// `connection_id`): both legs of one connection share it.
    pub connection: Option<u64>,
}

/// One attempt of a retried request.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// 1-based attempt number, in time order.
    pub number: usize,
    /// Exchange id.
    pub exchange: usize,
    /// Final status, if any.
    pub status: Option<u16>,
    /// Body bytes received.
    pub length: u64,
    /// True when the body was complete.
    pub complete: bool,
    /// Comparison with attempt 1 (`null` for attempt 1).
    pub comparison: Option<BodyComparison>,
    /// One sentence for humans.
    pub description: String,
    /// Why the bodies could not be compared, if they could not.
    pub not_compared: Option<String>,
    /// True when this attempt differs from attempt 1 and was answered 2xx.
    pub corrupt: bool,
}

/// Attempts of the same request (same leg, method and resource: absolute-form and origin-form
/// targets of one request are the same), in time order.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptGroup {
    /// Capture leg (`None`: not a faultline leg, "unknown" in JSON).
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Request method.
    pub method: String,
    /// Request target.
    pub target: String,
    /// Two or more attempts.
    pub attempts: Vec<Attempt>,
}

/// A complete upload checked against the content address in its target.
#[derive(Debug, Clone, Serialize)]
pub struct ContentCheck {
    /// Exchange id.
    pub exchange: usize,
    /// What the target promises.
    pub address: ContentAddress,
    /// What the body was.
    pub check: AddressCheck,
    /// True for a mismatch the server did not reject (status 2xx or no status).
    pub corrupt: bool,
}

/// Counts behind the verdict line.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// HTTP exchanges.
    pub exchanges: usize,
    /// Distinct uploads (PUT/POST/PATCH method + target; a git-annex p2phttp `put` is one upload
    /// of its key whatever `offset` it resumes at).
    pub uploads: usize,
    /// Distinct uploads (as `uploads` counts them) sent more than once on some leg.
    pub retried: usize,
    /// Distinct uploads (as `uploads` counts them) with a retry whose body differs from their
    /// first attempt on some leg: like `retried`, one per upload whichever legs show it.
    pub retries_differing: usize,
    /// Downloaded content-addressed objects checked (see `objects`): one per object (its
    /// address) whichever legs show it, as `uploads` counts uploads.
    pub downloads: usize,
    /// HTTP/2 streams (see `h2_streams`).
    pub h2_streams: usize,
    /// ByteStream blobs whose calls were stitched (see `bytestream`).
    pub blobs: usize,
}

/// Everything `faultline inspect` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// See [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Clean or corrupt.
    pub verdict: Verdict,
    /// The verdict line.
    pub verdict_line: String,
    /// Every corruption, one line each.
    pub findings: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// The capture.
    pub capture: CaptureInfo,
    /// Legs inspected.
    pub leg_filter: &'static str,
    /// Non-fatal problems.
    pub warnings: Vec<String>,
    /// TCP flows.
    pub flows: Vec<FlowSummary>,
    /// HTTP exchanges in time order, by number (`id`); with `--leg client` or `--leg upstream`
    /// the other leg's numbers are missing, so look an exchange up with [`Report::exchange`].
    pub exchanges: Vec<Exchange>,
    /// Retried requests.
    pub attempt_groups: Vec<AttemptGroup>,
    /// Content-address checks.
    pub content_checks: Vec<ContentCheck>,
    /// Client leg vs upstream leg.
    pub leg_comparisons: Vec<LegComparison>,
    /// Content-addressed objects stitched from their pieces (downloads, resumed, chunked and
    /// p2phttp uploads) and checked whole.
    pub objects: Vec<ObjectCheck>,
    /// git-annex p2phttp requests.
    pub p2phttp: Vec<P2pRequest>,
    /// WebDAV MOVE/COPY and the uploads they moved.
    pub webdav_moves: Vec<Move>,
    /// HTTP/2 connections: stream counts, GOAWAYs, decoding errors.
    pub h2_connections: Vec<H2Connection>,
    /// HTTP/2 streams in time order: headers, status, trailers, gRPC status, resets.
    pub h2_streams: Vec<H2Stream>,
    /// ByteStream blobs: Reads and Writes of one resource stitched by offset, checked whole.
    pub bytestream: Vec<BlobCheck>,
    /// The faultline run that wrote the capture (version, scenario, seed, command, replay), from
    /// its pcapng section comment; `null` for other captures.
    pub run: Option<RunInfo>,
    /// The other runs a concatenated capture holds (`cat a.pcapng b.pcapng`: a section each),
    /// after `run`, in file order; empty for the capture of one run.
    pub other_runs: Vec<RunInfo>,
    /// When things happened on each flow, in flow order (drawn by `--html`, not in `--json`).
    #[serde(skip)]
    pub timelines: Vec<FlowTimeline>,
    /// S3 requests, named (operation, bucket, key, upload id, part, answer).
    pub s3: Vec<S3Request>,
    /// `--expect`: each manifest line against what the capture shows was stored (empty without).
    pub expectations: Vec<Expectation>,
    /// What each path holds at the end of the capture, for `--expect`.
    #[serde(skip)]
    pub(crate) paths: Vec<PathState>,
}

impl Report {
    /// The exchange numbered `id` (its `id`, which is its index only when every leg is shown).
    pub fn exchange(&self, id: usize) -> Option<&Exchange> {
        self.exchanges
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.exchanges[i])
    }

    /// The legs the capture line names: "none named" when no flow is on a leg (neither named by
    /// the capture nor inferred), else the legs inspected; the same in every format.
    pub fn legs_shown(&self) -> &'static str {
        if !self.flows.is_empty() && self.flows.iter().all(|f| f.leg.is_none()) {
            "none named"
        } else {
            self.leg_filter
        }
    }

    /// What the report says when the capture records no faultline run, in its format's words: a
    /// classic pcap cannot record one, a pcapng without faultline's comment is another tool's.
    pub fn no_run_text(&self) -> &'static str {
        if self.capture.format == "pcap" {
            "not recorded: a classic pcap has no section comment (a .pcapng capture records the run)"
        } else {
            "not recorded: the capture has no faultline section comment (another tool wrote it)"
        }
    }

    /// Clean or corrupt.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// 0 when clean, 1 when corruption or a content-address mismatch was found, 3 when the
    /// capture misses payload and nothing corrupt was found in the rest.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Clean => 0,
            Verdict::Corrupt => 1,
            Verdict::Inconclusive => 3,
        }
    }
}
