//! The framing state machine of one direction: heads, bodies, pauses for protocol switches, tunnels.

use std::marker::PhantomData;
use std::mem;

use crate::http::body::{BodyKind, BodyPiece};
use crate::http::chunked::{ChunkedDecoder, Step};
use crate::http::error::{Direction, HttpError, HttpErrorKind};
use crate::http::event::FrameEvent;
use crate::http::head_buffer::HeadBuffer;
use crate::http::limits::Limits;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;

/// A head type the stream can parse from buffered bytes.
pub(crate) trait ParseHead: Sized {
    /// `Ok(None)` while incomplete.
    fn parse_head(buf: &[u8], max_headers: usize) -> Result<Option<Self>, HttpErrorKind>;

    /// Rejects the first bytes of a head that cannot start one (`start`: at most
    /// [`HeadBuffer::START`] bytes after leading empty lines). Heads are parsed once their blank
    /// line arrives: without this, bytes that never bring one (a TLS ClientHello sent to a
    /// plain HTTP port) were held, unanswered and unlogged, until the peer gave up.
    fn check_start(start: &[u8]) -> Result<(), HttpErrorKind>;
}

impl ParseHead for RequestHead {
    fn parse_head(buf: &[u8], max_headers: usize) -> Result<Option<Self>, HttpErrorKind> {
        RequestHead::parse(buf, max_headers)
    }

    fn check_start(start: &[u8]) -> Result<(), HttpErrorKind> {
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let method = start.split(|&b| b == b' ').next().unwrap_or_default();
        match method.iter().position(|&b| !tchar(b)) {
            None => Ok(()),
            Some(at) => Err(HttpErrorKind::InvalidHead {
                reason: format!(
                    "byte 0x{:02x} at {at} where the request method belongs{}",
                    method[at],
                    if start.first() == Some(&0x16) {
                        " (a TLS handshake sent to a plain HTTP port?)"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }
}

impl ParseHead for ResponseHead {
    fn parse_head(buf: &[u8], max_headers: usize) -> Result<Option<Self>, HttpErrorKind> {
        ResponseHead::parse(buf, max_headers)
    }

    fn check_start(start: &[u8]) -> Result<(), HttpErrorKind> {
        let n = start.len().min(5);
        if start[..n] == b"HTTP/"[..n] {
            Ok(())
        } else {
            Err(HttpErrorKind::InvalidHead {
                reason: "a response does not start with \"HTTP/\"".into(),
            })
        }
    }
}

/// What happens to the stream once the current message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterMessage {
    /// Another message may follow (keep-alive, pipelining).
    Continue,
    /// Undecided until the peer answers (CONNECT or Upgrade request): later bytes are held.
    AwaitSwitch,
    /// The stream becomes a tunnel (101 or CONNECT 2xx response).
    Tunnel,
}

/// The caller's framing decision for a head that just completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// How the body is delimited.
    pub body: BodyKind,
    /// What follows the message.
    pub after: AfterMessage,
}

/// Decides framing for a parsed head; errors are reported at the head's start offset.
pub(crate) type Decide<'a, H> = dyn FnMut(&H) -> Result<Decision, HttpErrorKind> + 'a;

#[derive(Debug)]
enum State {
    Head,
    Length {
        remaining: u64,
        payload: u64,
    },
    Chunked {
        decoder: ChunkedDecoder,
        payload: u64,
    },
    UntilClose {
        payload: u64,
    },
    AwaitSwitch {
        at: u64,
        held: Vec<u8>,
        eof: bool,
    },
    Tunnel,
    Ended,
}

/// Tracks message boundaries over one direction's raw bytes, fed in arbitrary chunks.
#[derive(Debug)]
pub(crate) struct MessageStream<H> {
    direction: Direction,
    limits: Limits,
    pos: u64,
    state: State,
    head: HeadBuffer,
    after: AfterMessage,
    switch_resolution: Option<bool>,
    _head: PhantomData<fn() -> H>,
}

impl<H: ParseHead> MessageStream<H> {
    /// A stream at offset 0 expecting a head.
    pub fn new(direction: Direction, limits: Limits) -> Self {
        MessageStream {
            direction,
            limits,
            pos: 0,
            state: State::Head,
            head: HeadBuffer::default(),
            after: AfterMessage::Continue,
            switch_resolution: None,
            _head: PhantomData,
        }
    }

    /// Stream offset of the next byte to be fed (= bytes fed so far).
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Bytes of a head still incomplete: the tail of what was fed, waiting for the rest of the
    /// head (0 when the stream is not inside a head).
    pub fn pending_head_bytes(&self) -> usize {
        match self.state {
            State::Head => self.head.len(),
            _ => 0,
        }
    }

    /// True once the stream carries raw tunnel bytes.
    pub fn is_tunnel(&self) -> bool {
        matches!(self.state, State::Tunnel)
            || matches!(self.state, State::Ended) && self.after == AfterMessage::Tunnel
    }

    /// Consumes `chunk`, appending what it reveals to `events`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        decide: &mut Decide<'_, H>,
        events: &mut Vec<FrameEvent<H>>,
    ) -> Result<(), HttpError> {
        let dir = self.direction;
        let mut i = 0;
        while i < chunk.len() {
            let rest = &chunk[i..];
            let mut message_done = false;
            match &mut self.state {
                State::Head => {
                    let start = self.pos - self.head.len() as u64;
                    let limits = self.limits;
                    let (n, head) = self
                        .head
                        .push(rest, limits.max_head_bytes, |buf| {
                            // The same verdict whether the head came whole or in pieces.
                            H::check_start(HeadBuffer::start_of(buf))?;
                            H::parse_head(buf, limits.max_headers)
                        })
                        .map_err(|k| k.at(dir, start))?;
                    if head.is_none() {
                        H::check_start(self.head.start()).map_err(|k| k.at(dir, start))?;
                    }
                    i += n;
                    self.pos += n as u64;
                    if let Some(head) = head {
                        let decision = decide(&head).map_err(|k| k.at(dir, start))?;
                        events.push(FrameEvent::Head {
                            head,
                            start,
                            end: self.pos,
                            body: decision.body,
                        });
                        self.after = decision.after;
                        self.begin_body(decision.body, events);
                    }
                }
                State::Length { remaining, payload } => {
                    let n = (*remaining).min(rest.len() as u64);
                    events.push(body(self.pos, n, *payload));
                    *remaining -= n;
                    *payload += n;
                    self.pos += n;
                    i += n as usize;
                    message_done = *remaining == 0;
                }
                State::Chunked { decoder, payload } => {
                    let pos = self.pos;
                    let step = decoder
                        .advance(rest)
                        .map_err(|(j, k)| k.at(dir, pos + j as u64))?;
                    let n = match step {
                        Step::Data(n) => {
                            events.push(body(pos, n as u64, *payload));
                            *payload += n as u64;
                            n
                        }
                        Step::Framing(n) => n,
                        Step::Done(n) => {
                            message_done = true;
                            n
                        }
                    };
                    self.pos += n as u64;
                    i += n;
                }
                State::UntilClose { payload } => {
                    events.push(body(self.pos, rest.len() as u64, *payload));
                    *payload += rest.len() as u64;
                    self.pos += rest.len() as u64;
                    i = chunk.len();
                }
                State::AwaitSwitch { held, .. } => {
                    let limit = self.limits.max_head_bytes;
                    if held.len() + rest.len() > limit {
                        let kind = HttpErrorKind::TooMuchDataBeforeSwitch { limit };
                        return Err(kind.at(dir, self.pos));
                    }
                    held.extend_from_slice(rest);
                    self.pos += rest.len() as u64;
                    i = chunk.len();
                }
                State::Tunnel => {
                    self.pos += rest.len() as u64;
                    i = chunk.len();
                }
                State::Ended => return Err(HttpErrorKind::FedAfterEof.at(dir, self.pos)),
            }
            if message_done {
                self.end_message(events);
            }
        }
        Ok(())
    }

    /// The peer closed this direction: ends a close-delimited body, or reports what was cut short.
    /// Calling it again is harmless.
    pub fn eof(&mut self, events: &mut Vec<FrameEvent<H>>) -> Result<(), HttpError> {
        let dir = self.direction;
        match &mut self.state {
            State::Head if self.head.is_blank() => {}
            State::Head => {
                let buffered = self.head.len();
                let start = self.pos - buffered as u64;
                return Err(HttpErrorKind::TruncatedHead { buffered }.at(dir, start));
            }
            State::Length { remaining, .. } => {
                let missing = *remaining;
                return Err(HttpErrorKind::TruncatedBody { missing }.at(dir, self.pos));
            }
            State::Chunked { decoder, .. } => {
                let missing_in_chunk = decoder.missing_in_chunk();
                let kind = HttpErrorKind::TruncatedChunkedBody { missing_in_chunk };
                return Err(kind.at(dir, self.pos));
            }
            State::UntilClose { .. } => events.push(FrameEvent::MessageEnd { end: self.pos }),
            State::AwaitSwitch { eof, .. } => {
                *eof = true;
                return Ok(());
            }
            State::Tunnel | State::Ended => {}
        }
        self.state = State::Ended;
        Ok(())
    }

    /// The answer to the CONNECT/Upgrade request that paused this stream arrived: `tunnel` says whether
    /// it switched protocols. Held bytes become tunnel bytes, or are framed as HTTP again (their events
    /// then refer to bytes fed in earlier calls). If the paused message has not ended yet, the decision
    /// is remembered and applied when it does.
    pub fn resolve_switch(
        &mut self,
        tunnel: bool,
        decide: &mut Decide<'_, H>,
        events: &mut Vec<FrameEvent<H>>,
    ) -> Result<(), HttpError> {
        let State::AwaitSwitch { at, held, eof } = &mut self.state else {
            self.switch_resolution = Some(tunnel);
            return Ok(());
        };
        let (at, held, eof) = (*at, mem::take(held), *eof);
        if tunnel {
            self.start_tunnel(at, events);
        } else {
            self.state = State::Head;
            self.after = AfterMessage::Continue;
            self.pos = at;
            self.feed(&held, decide, events)?;
        }
        if eof {
            self.eof(events)?;
        }
        Ok(())
    }

    /// Sets up body tracking after a head, ending the message at once when it has no body.
    fn begin_body(&mut self, kind: BodyKind, events: &mut Vec<FrameEvent<H>>) {
        self.state = match kind {
            BodyKind::None | BodyKind::Length(0) => return self.end_message(events),
            BodyKind::Length(remaining) => State::Length {
                remaining,
                payload: 0,
            },
            BodyKind::Chunked => State::Chunked {
                decoder: ChunkedDecoder::new(
                    self.limits.max_chunk_line,
                    self.limits.max_head_bytes,
                ),
                payload: 0,
            },
            BodyKind::UntilClose => State::UntilClose { payload: 0 },
        };
    }

    /// Reports the end of the current message and moves to what follows it.
    fn end_message(&mut self, events: &mut Vec<FrameEvent<H>>) {
        events.push(FrameEvent::MessageEnd { end: self.pos });
        let tunnel = match self.after {
            AfterMessage::Continue => false,
            AfterMessage::Tunnel => true,
            AfterMessage::AwaitSwitch => match self.switch_resolution.take() {
                Some(tunnel) => tunnel,
                None => {
                    self.state = State::AwaitSwitch {
                        at: self.pos,
                        held: Vec::new(),
                        eof: false,
                    };
                    return;
                }
            },
        };
        if tunnel {
            self.start_tunnel(self.pos, events);
        } else {
            self.state = State::Head;
        }
    }

    /// Turns the stream into a tunnel starting at `start`.
    fn start_tunnel(&mut self, start: u64, events: &mut Vec<FrameEvent<H>>) {
        self.after = AfterMessage::Tunnel;
        self.state = State::Tunnel;
        events.push(FrameEvent::Tunnel { start });
    }
}

/// A body event for `len` payload bytes at stream offset `at`.
fn body<H>(at: u64, len: u64, payload_offset: u64) -> FrameEvent<H> {
    FrameEvent::Body(BodyPiece {
        raw: at..at + len,
        payload_offset,
    })
}
