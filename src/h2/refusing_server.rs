//! The server side of an HTTP/2 connection that answers every request with one failure.
//!
//! When TLS interception cannot reach the upstream (its certificate fails verification, it does
//! not speak TLS…), an HTTP/1.1 client gets a `502 Bad Gateway` naming the reason. A client that
//! offered only ALPN `h2` (grpcio, Bazel, any gRPC stack) cannot read that answer, and a silent
//! close would leave it with "connection reset" and the reason only in faultline's log. So
//! faultline speaks just enough HTTP/2 to say it: the server preface, SETTINGS acknowledgements,
//! PING answers, and for each request a failure in the client's own terms: a gRPC call gets a
//! trailers-only `grpc-status 14` (UNAVAILABLE, what gRPC calls an unreachable backend) with the
//! reason as `grpc-message`; any other request gets `:status 502` with the reason as its body.
//! Pure: the caller moves the bytes.

use super::build::{self, BlockLimits};
use super::control::Control;
use super::conversation::Conversation;
use super::error::H2Error;
use super::error_code::ErrorCode;
use super::frame::{FrameType, StreamId, FLAG_ACK};
use super::headers::HeaderList;
use super::reader::PieceKind;
use super::tracker::BlockRole;
use crate::direction::Direction;

/// gRPC's UNAVAILABLE: "the service is currently unavailable", the status a client retries.
const GRPC_UNAVAILABLE: u32 = 14;

/// Answers an HTTP/2 client with one failure `reason` for every request it sends.
#[derive(Debug)]
pub struct RefusingServer {
    conversation: Conversation,
    /// Client bytes not yet consumed (an incomplete frame).
    pending: Vec<u8>,
    reason: String,
    highest: StreamId,
    answered: usize,
}

impl RefusingServer {
    /// A server whose every answer says `reason` (one line, e.g. "TLS to upstream X failed: …").
    pub fn new(reason: impl Into<String>) -> RefusingServer {
        RefusingServer {
            conversation: Conversation::new(),
            pending: Vec::new(),
            reason: reason.into(),
            highest: StreamId::CONNECTION,
            answered: 0,
        }
    }

    /// What the server sends first: its connection preface, an empty SETTINGS frame (every
    /// default kept).
    pub fn preface() -> Vec<u8> {
        build::frame(FrameType::Settings, 0, StreamId::CONNECTION, &[])
    }

    /// Reads what the client sent and returns what to write back: acknowledgements and one
    /// answer per request completed so far. An error means the client does not speak HTTP/2;
    /// the caller closes.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, H2Error> {
        self.pending.extend_from_slice(bytes);
        let fed = self
            .conversation
            .feed(Direction::ClientToUpstream, &self.pending)?;
        self.pending.drain(..fed.consumed);
        let mut out = Vec::new();
        for piece in &fed.pieces {
            match &piece.kind {
                PieceKind::Control(Control::Settings { ack: false, .. }) => {
                    out.extend_from_slice(&build::settings_ack());
                }
                PieceKind::Control(Control::Ping { ack: false, data }) => {
                    out.extend_from_slice(&ping_ack(data));
                }
                _ => {}
            }
        }
        for block in fed.blocks {
            if block.role != BlockRole::Request {
                continue;
            }
            self.highest = self.highest.max(block.stream);
            self.answered += 1;
            out.extend(self.answer(block.stream, &block.headers));
            if !block.end_stream {
                // The response is complete before the request (RFC 9113 §8.1): tell the client
                // to stop sending its body.
                out.extend(build::rst_stream(block.stream, ErrorCode::NO_ERROR));
            }
        }
        Ok(out)
    }

    /// How many requests were answered.
    pub fn answered(&self) -> usize {
        self.answered
    }

    /// The last frame: GOAWAY naming the highest stream answered, so the client knows no
    /// later stream was processed and the reason shows in its error.
    pub fn goodbye(&self) -> Vec<u8> {
        build::goaway(self.highest, ErrorCode::NO_ERROR, self.reason.as_bytes())
    }

    fn answer(&self, stream: StreamId, request: &HeaderList) -> Vec<u8> {
        let limits = BlockLimits::default();
        let grpc = request
            .get("content-type")
            .is_some_and(|t| t.starts_with(b"application/grpc"));
        if grpc {
            return build::grpc_trailers_only(stream, GRPC_UNAVAILABLE, &self.reason, limits);
        }
        let body = format!("502 Bad Gateway: {}\n", self.reason);
        let length = body.len().to_string();
        let head = HeaderList::from_pairs([
            (":status", "502"),
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", length.as_str()),
        ]);
        let mut out = build::headers(stream, &head, false, limits);
        // The reason is one line; a DATA frame of it fits the default maximum frame size.
        let body = &body.as_bytes()[..body.len().min(16 * 1024)];
        out.extend_from_slice(&build::data_header(stream, body.len() as u32, true));
        out.extend_from_slice(body);
        out
    }
}

fn ping_ack(data: &[u8; 8]) -> Vec<u8> {
    build::frame(FrameType::Ping, FLAG_ACK, StreamId::CONNECTION, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::hpack_encode::encode_block_with;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: FrameType, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        build::frame(kind, flags, StreamId(stream), payload)
    }

    fn request(stream: u32, content_type: &str, end_stream: bool) -> Vec<u8> {
        let headers = HeaderList::from_pairs([
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "cache.example"),
            (":path", "/google.bytestream.ByteStream/Read"),
            ("content-type", content_type),
        ]);
        let flags = 0x4 | if end_stream { 0x1 } else { 0 };
        frame(
            FrameType::Headers,
            flags,
            stream,
            &encode_block_with(&headers, None),
        )
    }

    /// Reads `bytes` as a client would: the response header blocks, by stream.
    fn responses(bytes: &[u8]) -> Vec<(StreamId, HeaderList)> {
        let mut conversation = Conversation::new();
        conversation
            .feed(Direction::ClientToUpstream, PREFACE)
            .expect("preface");
        let fed = conversation
            .feed(Direction::UpstreamToClient, bytes)
            .expect("well-formed frames");
        assert_eq!(fed.consumed, bytes.len(), "whole frames only");
        fed.blocks
            .into_iter()
            .map(|b| (b.stream, b.headers))
            .collect()
    }

    #[test]
    fn a_grpc_call_gets_unavailable_with_the_reason_and_a_plain_request_a_502() {
        let mut server = RefusingServer::new("TLS to upstream cache:443 failed: unknown issuer");
        let mut client = PREFACE.to_vec();
        client.extend(frame(FrameType::Settings, 0, 0, &[]));
        client.extend(request(1, "application/grpc+proto", false));
        client.extend(request(3, "text/plain", true));
        // Fed one byte at a time: frames split across reads are assembled.
        let mut out = RefusingServer::preface();
        for byte in &client {
            out.extend(
                server
                    .feed(std::slice::from_ref(byte))
                    .expect("valid HTTP/2"),
            );
        }
        out.extend(server.goodbye());
        assert_eq!(server.answered(), 2);
        let answers = responses(&out);
        assert_eq!(answers.len(), 2, "{answers:?}");
        let (stream, grpc) = &answers[0];
        assert_eq!(*stream, StreamId(1));
        assert_eq!(grpc.get_str("grpc-status").as_deref(), Some("14"));
        assert!(grpc
            .get_str("grpc-message")
            .is_some_and(|m| m.contains("unknown issuer")));
        let (stream, plain) = &answers[1];
        assert_eq!(*stream, StreamId(3));
        assert_eq!(plain.get_str(":status").as_deref(), Some("502"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("502 Bad Gateway: TLS to upstream cache:443 failed"));
    }

    #[test]
    fn settings_and_pings_are_acknowledged() {
        let mut server = RefusingServer::new("down");
        let mut client = PREFACE.to_vec();
        client.extend(frame(FrameType::Settings, 0, 0, &[0, 4, 0, 1, 0, 0]));
        client.extend(frame(FrameType::Ping, 0, 0, b"12345678"));
        let out = server.feed(&client).expect("valid");
        let mut expected = build::settings_ack().to_vec();
        expected.extend(ping_ack(b"12345678"));
        assert_eq!(out, expected);
        assert_eq!(server.answered(), 0);
    }

    #[test]
    fn a_client_that_is_not_http2_is_an_error_not_a_panic() {
        let mut server = RefusingServer::new("down");
        assert!(server.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
    }
}
