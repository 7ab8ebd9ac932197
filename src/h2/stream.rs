//! What one HTTP/2 stream carried so far: its headers, state, ends, reset and byte counts in both directions.

use super::error::Direction;
use super::error_code::ErrorCode;
use super::flow::Window;
use super::frame::StreamId;
use super::headers::HeaderList;

/// RFC 9113 §5.1 stream states, as an observer between both peers sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Promised with PUSH_PROMISE, no response HEADERS yet.
    Reserved,
    /// Both directions may still send.
    Open,
    /// `ended` sent END_STREAM; the other direction may still send.
    HalfClosed {
        /// The direction that finished.
        ended: Direction,
    },
    /// Both directions ended, or the stream was reset.
    Closed,
}

/// A RST_STREAM seen on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// The direction the RST_STREAM travelled (client->upstream: the client reset the stream).
    pub by: Direction,
    /// Its error code.
    pub code: ErrorCode,
}

/// One stream's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The stream id.
    pub id: StreamId,
    /// Whether the server opened it with PUSH_PROMISE.
    pub pushed: bool,
    /// Request headers (or the PUSH_PROMISE request of a pushed stream).
    pub request: Option<HeaderList>,
    /// 1xx responses, in order.
    pub informational: Vec<HeaderList>,
    /// The final response headers (for a gRPC trailers-only response, also the trailers).
    pub response: Option<HeaderList>,
    /// Trailers the client sent after its DATA (rare).
    pub request_trailers: Option<HeaderList>,
    /// Trailers the server sent after its DATA (where gRPC puts `grpc-status`).
    pub response_trailers: Option<HeaderList>,
    /// END_STREAM seen, per direction ([`Direction::index`]).
    pub ended: [bool; 2],
    /// RST_STREAM seen (the first one counts).
    pub reset: Option<Reset>,
    /// DATA payload bytes per direction (padding excluded).
    pub data_bytes: [u64; 2],
    /// Size of the header lists stored above, as RFC 9113 §6.5.2 counts it (a replaced list
    /// stays counted): what the tracker's header budget holds for this stream.
    pub headers_kept: usize,
    /// Flow-controlled bytes per direction (whole DATA payloads, padding included).
    pub flow_bytes: [u64; 2],
    /// Stream-level send window of the sender in each direction.
    pub send_window: [Window; 2],
}

impl Stream {
    /// A new stream whose senders start with the given stream windows (the receivers' SETTINGS).
    pub fn new(id: StreamId, windows: [Window; 2]) -> Stream {
        Stream {
            id,
            pushed: false,
            request: None,
            informational: Vec::new(),
            response: None,
            request_trailers: None,
            response_trailers: None,
            ended: [false; 2],
            reset: None,
            data_bytes: [0; 2],
            headers_kept: 0,
            flow_bytes: [0; 2],
            send_window: windows,
        }
    }

    /// The state as far as both directions were observed.
    pub fn state(&self) -> StreamState {
        if self.reset.is_some() || self.ended == [true, true] {
            return StreamState::Closed;
        }
        if self.pushed && self.response.is_none() {
            return StreamState::Reserved;
        }
        for direction in Direction::ALL {
            if self.ended[direction.index()] {
                return StreamState::HalfClosed { ended: direction };
            }
        }
        StreamState::Open
    }

    /// Whether the stream is over (ended both ways or reset).
    pub fn is_closed(&self) -> bool {
        self.state() == StreamState::Closed
    }

    /// The gRPC status of the call: from the trailers, or from a trailers-only response.
    pub fn grpc_status(&self) -> Option<u32> {
        self.response_trailers
            .as_ref()
            .and_then(HeaderList::grpc_status)
            .or_else(|| self.response.as_ref().and_then(HeaderList::grpc_status))
    }

    /// The decoded `grpc-message` of the call, from where the status came.
    pub fn grpc_message(&self) -> Option<String> {
        self.response_trailers
            .as_ref()
            .and_then(HeaderList::grpc_message)
            .or_else(|| self.response.as_ref().and_then(HeaderList::grpc_message))
    }

    /// The response `:status`.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().and_then(HeaderList::status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_ends_and_resets() {
        let mut stream = Stream::new(StreamId(1), [Window::INITIAL; 2]);
        assert_eq!(stream.state(), StreamState::Open);
        stream.ended[Direction::ClientToUpstream.index()] = true;
        assert_eq!(
            stream.state(),
            StreamState::HalfClosed {
                ended: Direction::ClientToUpstream
            }
        );
        stream.reset = Some(Reset {
            by: Direction::UpstreamToClient,
            code: ErrorCode::CANCEL,
        });
        assert!(stream.is_closed());
    }

    #[test]
    fn grpc_status_prefers_trailers_then_trailers_only() {
        let mut stream = Stream::new(StreamId(1), [Window::INITIAL; 2]);
        stream.response = Some(HeaderList::from_pairs([
            (":status", "200"),
            ("grpc-status", "14"),
        ]));
        assert_eq!(stream.grpc_status(), Some(14));
        stream.response_trailers = Some(HeaderList::from_pairs([("grpc-status", "0")]));
        assert_eq!(stream.grpc_status(), Some(0));
        assert_eq!(stream.status(), Some(200));
    }
}
