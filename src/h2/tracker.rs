//! Stream states of one connection, built from both directions' frames: headers, ends, resets, SETTINGS, windows, GOAWAY.

use std::collections::BTreeMap;

use super::control::Control;
use super::error::Direction;
use super::error_code::ErrorCode;
use super::flow::Window;
use super::frame::{FrameHeader, FrameType, StreamId, FLAG_END_STREAM};
use super::headers::HeaderList;
use super::reader::{BlockKind, HeaderBlock};
use super::settings::PeerSettings;
use super::stream::{Reset, Stream};

/// What a header block meant for its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRole {
    /// A client's HEADERS opening a new stream.
    Request,
    /// A server's PUSH_PROMISE: request headers of the reserved stream `promised`.
    PushRequest {
        /// The stream the server will push on.
        promised: StreamId,
    },
    /// A 1xx response.
    Informational,
    /// The final response headers (a gRPC trailers-only response is this with END_STREAM).
    Response,
    /// Trailers after DATA (either direction).
    Trailers,
    /// A block on a stream that is closed or was never opened: decoded (HPACK state must follow)
    /// but belonging to nothing the tracker knows.
    Orphan,
}

/// A GOAWAY seen in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goaway {
    /// Highest stream id the sender processed or may still process.
    pub last_stream: StreamId,
    /// Its error code.
    pub code: ErrorCode,
    /// Debug data as sent.
    pub debug: Vec<u8>,
}

/// Streams and connection state of one HTTP/2 connection as seen between the peers.
///
/// Per-direction arrays are indexed by [`Direction::index`]: `settings[d]` were advertised by the
/// peer that sends in direction `d`, `connection_window[d]` is the send window of that peer.
#[derive(Debug, Clone)]
pub struct Tracker {
    streams: BTreeMap<StreamId, Stream>,
    settings: [PeerSettings; 2],
    connection_window: [Window; 2],
    /// Connection-level credit granted to the peer sending in each direction so far: the
    /// initial window plus every WINDOW_UPDATE its receiver sent (what `connection_window` is
    /// before the DATA read is taken off).
    connection_granted: [Window; 2],
    /// Highest stream id opened by the client (index 0) and promised by the server (index 1).
    highest: [StreamId; 2],
    goaway: [Option<Goaway>; 2],
    opened: u64,
    /// Sum of the tracked streams' `headers_kept`.
    headers_kept: usize,
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker::new()
    }
}

fn other(direction: Direction) -> Direction {
    match direction {
        Direction::ClientToUpstream => Direction::UpstreamToClient,
        Direction::UpstreamToClient => Direction::ClientToUpstream,
    }
}

impl Tracker {
    /// A connection before any frame.
    pub fn new() -> Tracker {
        Tracker {
            streams: BTreeMap::new(),
            settings: [PeerSettings::default(), PeerSettings::default()],
            connection_window: [Window::INITIAL; 2],
            connection_granted: [Window::INITIAL; 2],
            highest: [StreamId(0); 2],
            goaway: [None, None],
            opened: 0,
            headers_kept: 0,
        }
    }

    /// The stream record, while the tracker keeps it.
    pub fn stream(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(&id)
    }

    /// Every stream kept, in id order.
    pub fn streams(&self) -> impl Iterator<Item = &Stream> {
        self.streams.values()
    }

    /// Drops closed streams (the proxy calls this after each chunk so long connections stay
    /// small; `inspect` keeps them). Later frames of a dropped stream are recognised as belonging
    /// to a closed stream by their id.
    pub fn prune_closed(&mut self) {
        self.prune_closed_except(|_| false);
    }

    /// Drops closed streams, except those `keep` names (`inspect` keeps the streams it lists).
    pub fn prune_closed_except(&mut self, keep: impl Fn(StreamId) -> bool) {
        let mut released = 0;
        self.streams.retain(|&id, stream| {
            let retained = !stream.is_closed() || keep(id);
            if !retained {
                released += stream.headers_kept;
            }
            retained
        });
        self.headers_kept -= released;
    }

    /// Size of the header lists the tracked streams hold (RFC 9113 §6.5.2 count): a peer that
    /// opens streams and never ends them makes this grow, so the conversation bounds it.
    pub fn headers_kept(&self) -> usize {
        self.headers_kept
    }

    /// SETTINGS advertised by the peer sending in `direction`.
    pub fn settings(&self, direction: Direction) -> &PeerSettings {
        &self.settings[direction.index()]
    }

    /// Connection-level send window of the peer sending in `direction`.
    pub fn connection_window(&self, direction: Direction) -> Window {
        self.connection_window[direction.index()]
    }

    /// Connection-level credit the receiver of `direction` granted its sender so far, however
    /// much of it DATA used: a proxy that holds DATA back compares it with what it forwarded.
    pub fn connection_granted(&self, direction: Direction) -> Window {
        self.connection_granted[direction.index()]
    }

    /// Highest stream id the client opened: what a graceful GOAWAY toward the client names.
    pub fn highest_client_stream(&self) -> StreamId {
        self.highest[0]
    }

    /// Highest stream id the server promised.
    pub fn highest_pushed_stream(&self) -> StreamId {
        self.highest[1]
    }

    /// Streams opened so far (client requests and pushes).
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// The GOAWAY sent in `direction`, if any (the latest one).
    pub fn goaway(&self, direction: Direction) -> Option<&Goaway> {
        self.goaway[direction.index()].as_ref()
    }

    /// Windows a new stream starts with: each sender gets what its receiver advertised.
    fn initial_windows(&self) -> [Window; 2] {
        let for_sender = |d: Direction| {
            Window(i64::from(
                self.settings[other(d).index()].initial_window_size,
            ))
        };
        [
            for_sender(Direction::ClientToUpstream),
            for_sender(Direction::UpstreamToClient),
        ]
    }

    fn open(&mut self, id: StreamId, slot: usize) -> &mut Stream {
        let windows = self.initial_windows();
        self.highest[slot] = self.highest[slot].max(id);
        self.opened += 1;
        self.streams
            .entry(id)
            .or_insert_with(|| Stream::new(id, windows))
    }

    /// Stream 1 of a connection upgraded from HTTP/1.1 (`Upgrade: h2c`, RFC 7540 §3.2): it
    /// carries the upgraded request, whose headers came as HTTP/1 (`request`), and the client's
    /// half is already closed; the server answers on it in HTTP/2.
    pub fn open_upgraded(&mut self, request: HeaderList) {
        let size = request.list_size();
        self.headers_kept += size;
        let stream = self.open(StreamId(1), 0);
        stream.request = Some(request);
        stream.headers_kept += size;
        stream.ended[Direction::ClientToUpstream.index()] = true;
    }

    /// A complete header block travelled in `direction`; returns what it was for its stream.
    pub fn on_block(
        &mut self,
        direction: Direction,
        block: &HeaderBlock,
        headers: &HeaderList,
    ) -> BlockRole {
        let role = self.store_block(direction, block, headers);
        let stored = match role {
            BlockRole::Orphan => None,
            BlockRole::PushRequest { promised } => Some(promised),
            _ => Some(block.stream),
        };
        if let Some(stream) = stored.and_then(|id| self.streams.get_mut(&id)) {
            let size = headers.list_size();
            stream.headers_kept += size;
            self.headers_kept += size;
        }
        role
    }

    fn store_block(
        &mut self,
        direction: Direction,
        block: &HeaderBlock,
        headers: &HeaderList,
    ) -> BlockRole {
        let id = block.stream;
        match block.kind {
            BlockKind::PushPromise { promised } => {
                if direction != Direction::UpstreamToClient
                    || promised <= self.highest[1]
                    || self.streams.contains_key(&promised)
                {
                    return BlockRole::Orphan;
                }
                let stream = self.open(promised, 1);
                stream.pushed = true;
                stream.request = Some(headers.clone());
                // A pushed stream has no request body: the client half is done.
                stream.ended[Direction::ClientToUpstream.index()] = true;
                BlockRole::PushRequest { promised }
            }
            BlockKind::Headers { end_stream, .. } => {
                let role = match (direction, self.streams.contains_key(&id)) {
                    (Direction::ClientToUpstream, false) => {
                        if id.is_client_initiated() && id > self.highest[0] {
                            let stream = self.open(id, 0);
                            stream.request = Some(headers.clone());
                            BlockRole::Request
                        } else {
                            return BlockRole::Orphan;
                        }
                    }
                    (_, false) => return BlockRole::Orphan,
                    (Direction::ClientToUpstream, true) => {
                        let stream = self.streams.get_mut(&id).expect("checked above");
                        stream.request_trailers = Some(headers.clone());
                        BlockRole::Trailers
                    }
                    (Direction::UpstreamToClient, true) => {
                        let stream = self.streams.get_mut(&id).expect("checked above");
                        if stream.response.is_some() {
                            stream.response_trailers = Some(headers.clone());
                            BlockRole::Trailers
                        } else if headers.status().is_some_and(|s| (100..200).contains(&s)) {
                            stream.informational.push(headers.clone());
                            BlockRole::Informational
                        } else {
                            stream.response = Some(headers.clone());
                            BlockRole::Response
                        }
                    }
                };
                if end_stream {
                    if let Some(stream) = self.streams.get_mut(&id) {
                        stream.ended[direction.index()] = true;
                    }
                }
                role
            }
        }
    }

    /// A DATA frame header travelled in `direction`: flow control and END_STREAM.
    pub fn on_data_frame(&mut self, direction: Direction, header: &FrameHeader) {
        if header.kind != FrameType::Data {
            return;
        }
        let len = u64::from(header.length);
        self.connection_window[direction.index()].consume(len);
        if let Some(stream) = self.streams.get_mut(&header.stream) {
            stream.flow_bytes[direction.index()] += len;
            stream.send_window[direction.index()].consume(len);
            if header.has(FLAG_END_STREAM) {
                stream.ended[direction.index()] = true;
            }
        }
    }

    /// `len` DATA payload bytes of `stream` travelled in `direction`.
    pub fn on_data_bytes(&mut self, direction: Direction, stream: StreamId, len: usize) {
        if let Some(stream) = self.streams.get_mut(&stream) {
            stream.data_bytes[direction.index()] += len as u64;
        }
    }

    /// A control frame travelled in `direction`.
    pub fn on_control(&mut self, direction: Direction, header: &FrameHeader, control: &Control) {
        let d = direction.index();
        match control {
            Control::Settings { ack: false, values } => {
                let delta = self.settings[d].apply(values);
                self.settings[d].unacknowledged += 1;
                if delta != 0 {
                    // The other peer's stream windows for DATA sent to this peer shift.
                    let sender = other(direction).index();
                    for stream in self.streams.values_mut() {
                        stream.send_window[sender].grant(delta);
                    }
                }
            }
            Control::Settings { ack: true, .. } => {
                let settings = &mut self.settings[other(direction).index()];
                settings.unacknowledged = settings.unacknowledged.saturating_sub(1);
            }
            Control::WindowUpdate { increment } => {
                let sender = other(direction).index();
                if header.stream.is_connection() {
                    self.connection_window[sender].grant(i64::from(*increment));
                    self.connection_granted[sender].grant(i64::from(*increment));
                } else if let Some(stream) = self.streams.get_mut(&header.stream) {
                    stream.send_window[sender].grant(i64::from(*increment));
                }
            }
            Control::RstStream { code } => {
                if let Some(stream) = self.streams.get_mut(&header.stream) {
                    stream.reset.get_or_insert(Reset {
                        by: direction,
                        code: *code,
                    });
                }
            }
            Control::Goaway {
                last_stream,
                code,
                debug,
            } => {
                self.goaway[d] = Some(Goaway {
                    last_stream: *last_stream,
                    code: *code,
                    debug: debug.clone(),
                });
            }
            Control::Priority { .. } | Control::Ping { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::FLAG_END_STREAM;

    const UP: Direction = Direction::ClientToUpstream;
    const DOWN: Direction = Direction::UpstreamToClient;

    fn block(stream: u32, end_stream: bool) -> HeaderBlock {
        HeaderBlock {
            stream: StreamId(stream),
            kind: BlockKind::Headers {
                end_stream,
                priority: None,
            },
            hpack: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    fn data(stream: u32, length: u32, flags: u8) -> FrameHeader {
        FrameHeader {
            length,
            kind: FrameType::Data,
            flags,
            stream: StreamId(stream),
        }
    }

    fn control(stream: u32, kind: FrameType) -> FrameHeader {
        FrameHeader {
            length: 0,
            kind,
            flags: 0,
            stream: StreamId(stream),
        }
    }

    #[test]
    fn a_grpc_call_goes_from_request_to_trailers() {
        let mut tracker = Tracker::new();
        let request = HeaderList::from_pairs([(":method", "POST"), (":path", "/svc/M")]);
        assert_eq!(
            tracker.on_block(UP, &block(1, false), &request),
            BlockRole::Request
        );
        tracker.on_data_frame(UP, &data(1, 10, FLAG_END_STREAM));
        tracker.on_data_bytes(UP, StreamId(1), 10);
        let response = HeaderList::from_pairs([(":status", "200")]);
        assert_eq!(
            tracker.on_block(DOWN, &block(1, false), &response),
            BlockRole::Response
        );
        tracker.on_data_frame(DOWN, &data(1, 20, 0));
        let trailers = HeaderList::from_pairs([("grpc-status", "0")]);
        assert_eq!(
            tracker.on_block(DOWN, &block(1, true), &trailers),
            BlockRole::Trailers
        );
        let stream = tracker.stream(StreamId(1)).expect("kept");
        assert!(stream.is_closed());
        assert_eq!(stream.grpc_status(), Some(0));
        assert_eq!(stream.data_bytes, [10, 0]);
        assert_eq!(stream.flow_bytes, [10, 20]);
        assert_eq!(tracker.connection_window(UP), Window(65_525));
        assert_eq!(tracker.highest_client_stream(), StreamId(1));

        tracker.prune_closed();
        assert!(tracker.stream(StreamId(1)).is_none());
        // A late block on the pruned stream is an orphan, not a new request.
        assert_eq!(
            tracker.on_block(UP, &block(1, false), &request),
            BlockRole::Orphan
        );
    }

    #[test]
    fn settings_and_window_updates_move_the_right_windows() {
        let mut tracker = Tracker::new();
        tracker.on_block(UP, &block(1, false), &HeaderList::default());
        // The client says: send me up to 1 MiB per stream.
        tracker.on_control(
            UP,
            &control(0, FrameType::Settings),
            &Control::Settings {
                ack: false,
                values: vec![(crate::h2::settings::INITIAL_WINDOW_SIZE, 1 << 20)],
            },
        );
        let stream = tracker.stream(StreamId(1)).expect("open");
        assert_eq!(stream.send_window[DOWN.index()], Window(1 << 20));
        assert_eq!(stream.send_window[UP.index()], Window::INITIAL);
        // The server returns connection credit to the client.
        tracker.on_control(
            DOWN,
            &control(0, FrameType::WindowUpdate),
            &Control::WindowUpdate { increment: 100 },
        );
        assert_eq!(tracker.connection_window(UP), Window(65_635));
        tracker.on_control(
            DOWN,
            &control(0, FrameType::Settings),
            &Control::Settings {
                ack: true,
                values: vec![],
            },
        );
        assert_eq!(tracker.settings(UP).unacknowledged, 0);
    }

    #[test]
    fn resets_and_goaways_are_recorded() {
        let mut tracker = Tracker::new();
        tracker.on_block(UP, &block(3, false), &HeaderList::default());
        tracker.on_control(
            DOWN,
            &control(3, FrameType::RstStream),
            &Control::RstStream {
                code: ErrorCode::CANCEL,
            },
        );
        let stream = tracker.stream(StreamId(3)).expect("kept");
        assert_eq!(
            stream.reset,
            Some(Reset {
                by: DOWN,
                code: ErrorCode::CANCEL
            })
        );
        tracker.on_control(
            DOWN,
            &control(0, FrameType::Goaway),
            &Control::Goaway {
                last_stream: StreamId(3),
                code: ErrorCode::NO_ERROR,
                debug: Vec::new(),
            },
        );
        assert_eq!(
            tracker.goaway(DOWN).map(|g| g.last_stream),
            Some(StreamId(3))
        );
        assert!(tracker.goaway(UP).is_none());
    }

    #[test]
    fn informational_responses_and_pushes_are_told_apart() {
        let mut tracker = Tracker::new();
        tracker.on_block(UP, &block(1, true), &HeaderList::default());
        let early = HeaderList::from_pairs([(":status", "103")]);
        assert_eq!(
            tracker.on_block(DOWN, &block(1, false), &early),
            BlockRole::Informational
        );
        let promise = HeaderBlock {
            kind: BlockKind::PushPromise {
                promised: StreamId(2),
            },
            ..block(1, false)
        };
        assert_eq!(
            tracker.on_block(DOWN, &promise, &HeaderList::default()),
            BlockRole::PushRequest {
                promised: StreamId(2)
            }
        );
        assert_eq!(tracker.highest_pushed_stream(), StreamId(2));
        let pushed = tracker.stream(StreamId(2)).expect("reserved");
        assert_eq!(pushed.state(), crate::h2::stream::StreamState::Reserved);
        // A server cannot open a stream with HEADERS.
        assert_eq!(
            tracker.on_block(DOWN, &block(4, false), &HeaderList::default()),
            BlockRole::Orphan
        );
    }

    /// What the tracked streams' header lists hold is counted as they are stored (orphans are
    /// not stored) and released exactly when their stream is pruned; `inspect` keeps the
    /// streams it names.
    #[test]
    fn header_lists_kept_are_counted_and_released_by_pruning() {
        let mut tracker = Tracker::new();
        let request = HeaderList::from_pairs([(":method", "GET"), (":path", "/a")]);
        let response = HeaderList::from_pairs([(":status", "200")]);
        let (req, resp) = (request.list_size(), response.list_size());
        for id in [1, 3, 5] {
            tracker.on_block(UP, &block(id, true), &request);
        }
        assert_eq!(tracker.headers_kept(), 3 * req);
        // A block on a stream never opened by the client is an orphan: nothing kept.
        tracker.on_block(DOWN, &block(9, false), &response);
        assert_eq!(tracker.headers_kept(), 3 * req);
        for id in [1, 3] {
            tracker.on_block(DOWN, &block(id, true), &response);
        }
        assert_eq!(tracker.headers_kept(), 3 * req + 2 * resp);
        tracker.prune_closed_except(|id| id == StreamId(1));
        assert_eq!(tracker.headers_kept(), 2 * req + resp, "stream 3 released");
        tracker.prune_closed();
        assert_eq!(
            tracker.headers_kept(),
            req,
            "only the open stream 5 holds lists"
        );
        assert!(tracker.stream(StreamId(5)).is_some());
    }
}
