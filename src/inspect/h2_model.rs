//! The HTTP/2 part of the report: connections with their GOAWAYs, streams with their headers, status, trailers, gRPC status and resets.

use serde::Serialize;

use super::leg;
use crate::direction::Leg;
use crate::h2::HeaderList;

/// Header fields kept per header list.
pub const MAX_FIELDS: usize = 64;
/// Characters kept per header value (and GOAWAY debug data).
pub const MAX_VALUE: usize = 1024;

/// One header field as reported (values lossy UTF-8, long ones shortened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field value.
    pub value: String,
}

/// The fields of `list` as reported (none when absent).
pub fn fields(list: Option<&HeaderList>) -> Vec<Field> {
    let Some(list) = list else {
        return Vec::new();
    };
    list.fields
        .iter()
        .take(MAX_FIELDS)
        .map(|f| {
            let mut value = String::from_utf8_lossy(&f.value).into_owned();
            if value.chars().count() > MAX_VALUE {
                value = value.chars().take(MAX_VALUE).collect::<String>() + "…";
            }
            Field {
                name: String::from_utf8_lossy(&f.name).into_owned(),
                value,
            }
        })
        .collect()
}

/// A RST_STREAM, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetNote {
    /// The direction it travelled (`upstream->client`: the server, or faultline toward the
    /// client, reset the stream).
    pub by: String,
    /// RFC 9113 error code name (`CANCEL`), or `0x…` for an undefined code.
    pub code: String,
    /// When the first RST_STREAM of the stream crossed, ns since the epoch (so a timeline draws
    /// it where it happened, not where the stream began); `None` if the frame was not seen.
    pub at_ns: Option<u64>,
}

/// A GOAWAY, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoawayNote {
    /// The direction it travelled.
    pub by: String,
    /// Highest stream id its sender processed.
    pub last_stream: u32,
    /// RFC 9113 error code name.
    pub code: String,
    /// Debug data (lossy UTF-8).
    pub debug: String,
    /// When it crossed, ns since the epoch.
    pub at_ns: u64,
}

/// One HTTP/2 stream of a connection.
#[derive(Debug, Clone, Serialize)]
pub struct H2Stream {
    /// The TCP flow.
    pub flow: u64,
    /// Capture leg.
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// The stream id.
    pub stream: u32,
    /// When its request headers crossed, ns since the epoch.
    pub opened_ns: u64,
    /// `:method`.
    pub method: Option<String>,
    /// `:path`.
    pub path: Option<String>,
    /// `:authority` (or `host`).
    pub authority: Option<String>,
    /// Response `:status`.
    pub status: Option<u16>,
    /// Request header fields.
    pub request_headers: Vec<Field>,
    /// Final response header fields.
    pub response_headers: Vec<Field>,
    /// Response trailers (where gRPC puts its status).
    pub trailers: Vec<Field>,
    /// Fields of header blocks that crossed after the stream's RST_STREAM (typically the
    /// server's trailers, forwarded after faultline reset the stream toward the client): the
    /// receiver ignores them (RFC 9113 §5.1), so they are not in `status`, `trailers`,
    /// `grpc_status` or `response_ended`.
    pub ignored_after_reset: Vec<Field>,
    /// `grpc-status` (trailers, or a trailers-only response).
    pub grpc_status: Option<u32>,
    /// Its name (`UNAVAILABLE`).
    pub grpc_status_name: Option<String>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: Option<String>,
    /// When the header block carrying `grpc-status` crossed (trailers, or a trailers-only
    /// response), ns since the epoch; `None` without a `grpc-status`.
    pub grpc_status_ns: Option<u64>,
    /// When the final response headers crossed, ns since the epoch (`None`: no response, or
    /// only after a reset).
    pub response_ns: Option<u64>,
    /// When the last response DATA or header block crossed before any reset, ns since the
    /// epoch: with `response_ns`, the span a timeline draws as the response.
    pub response_last_ns: Option<u64>,
    /// DATA payload bytes sent by the client.
    pub request_bytes: u64,
    /// DATA payload bytes sent by the server.
    pub response_bytes: u64,
    /// Complete gRPC messages the client sent (0 for a non-gRPC stream).
    pub request_messages: u64,
    /// Complete gRPC messages the server sent.
    pub response_messages: u64,
    /// The client ended its side (END_STREAM).
    pub request_ended: bool,
    /// The server ended its side.
    pub response_ended: bool,
    /// The response's stated `content-length`, if it gave one.
    pub response_content_length: Option<u64>,
    /// The response began (a final status crossed) but its body is short: fewer DATA bytes than
    /// its `content-length` (a stream ended early with END_STREAM, as faultline's truncate
    /// does), or the stream never ended (RST_STREAM, the connection closed or reset). HTTP/1
    /// marks the same as `complete: false`.
    pub response_cut: bool,
    /// RST_STREAM, if the stream was reset.
    pub reset: Option<ResetNote>,
    /// Fault comments on its frames.
    pub faults: Vec<String>,
}

impl H2Stream {
    /// The response byte count as a report shows it: `received/stated CUT` when the response
    /// was cut short (`?` when no length was stated), as HTTP/1 rows show theirs.
    pub fn response_bytes_text(&self) -> String {
        if self.response_cut {
            format!(
                "{}/{} CUT",
                self.response_bytes,
                self.response_content_length
                    .map_or("?".into(), |n| n.to_string())
            )
        } else {
            self.response_bytes.to_string()
        }
    }

    /// What a report says of a `grpc-status` that crossed after the stream's reset (ignored by
    /// the receiver), if one did.
    pub fn late_grpc_status(&self) -> Option<String> {
        self.ignored_after_reset
            .iter()
            .find(|f| f.name == "grpc-status")
            .map(|late| format!("grpc-status {} came after the reset: ignored", late.value))
    }
}

/// One HTTP/2 connection (a flow that started with the client preface).
#[derive(Debug, Clone, Serialize)]
pub struct H2Connection {
    /// The TCP flow.
    pub flow: u64,
    /// Capture leg.
    #[serde(serialize_with = "leg::serialize")]
    pub leg: Option<Leg>,
    /// Streams opened by requests.
    pub streams: u64,
    /// GOAWAY frames, in order.
    pub goaways: Vec<GoawayNote>,
    /// Why decoding stopped early (an HTTP/2 violation, a capture gap), if it did.
    pub error: Option<String>,
}
