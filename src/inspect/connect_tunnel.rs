//! The connection inside a CONNECT tunnel, read from the tunnel's start offsets as a connection of its own.
//!
//! In forward mode (`HTTPS_PROXY=http://127.0.0.1:3030`) the client leg carries `CONNECT host:443`,
//! its 2xx, and then the connection the client really meant: plain HTTP/1, HTTP/2 with prior
//! knowledge, or TLS (decrypted in a plaintext capture; records plus keys in a raw one). The
//! flow's HTTP/1 view stops at the 2xx ([`TunnelState`]); this follower holds each direction's
//! bytes while the CONNECT waits for its answer, then hands everything from the tunnel start on
//! to a fresh [`TlsLayer`] over fresh [`FlowViews`] with offsets counted from the tunnel start in
//! each direction, so the inner connection is detected and decrypted exactly like a flow that
//! starts there (the model is `h2c_upgrade`, which continues after a 101 at known offsets). Its
//! exchanges are ordinary exchanges of the same flow and leg, their offsets counted in the flow's
//! streams again (a decrypted tunnel's in plaintext after the tunnel start, which the flow's
//! timeline then counts too).
//!
//! Bytes that are none of these stay opaque, as before: no exchange, no warning. A 101 switch
//! (WebSocket and the like) is not followed here; h2c has its own view.

use super::body_store::MemoryUse;
use super::exchange::{FlowOutcome, TunnelState};
use super::flow_views::FlowViews;
use super::h2_flow::H2Outcome;
use super::reassembly::{FlowInfo, StreamConsumer};
use super::timeline::FlowTimeline;
use super::tls_flow::TlsLayer;
use super::tls_keys::TlsKeys;
use crate::direction::Direction;

/// Bytes held (both directions) while a CONNECT waits for its answer; a client that sends more
/// before the 2xx is not a proxy client, and its tunnel is not read.
const MAX_HELD: usize = 1 << 20;

/// One stream event of the flow, kept while the tunnel is undecided.
#[derive(Debug)]
enum Event {
    Data(Vec<u8>, u64),
    Fin(u64),
    Reset(u64),
    Gap(u64),
    Comment(String, u64),
}

/// Follows one flow's CONNECT to its tunnel and reads what the tunnel carries.
pub struct ConnectTunnel {
    /// The flow, whose id and leg the inner connection's exchanges take.
    info: FlowInfo,
    /// The capture's TLS keys, for a TLS tunnel of a raw capture.
    keys: TlsKeys,
    memory: MemoryUse,
    /// False on a flow read only for numbering (`--leg` leaves its leg out).
    retain: bool,
    /// Events since the CONNECT, while its answer is awaited (outer offsets).
    held: Vec<(Direction, u64, Event)>,
    /// Data bytes in `held`.
    held_bytes: usize,
    /// The inner connection and where it starts in the outer streams, once the 2xx crossed.
    inner: Option<(Box<TlsLayer<FlowViews>>, [u64; 2])>,
    /// Why the tunnel is not read (too much held before the answer).
    abandoned: Option<String>,
}

/// What the tunnel's connection contributes to its flow.
pub struct TunnelOutcome {
    /// Its HTTP/1 exchanges (stream ranges in outer offsets), warnings and faults.
    pub http: FlowOutcome,
    /// Its HTTP/2 connection, if it was one.
    pub h2: Option<H2Outcome>,
}

impl ConnectTunnel {
    /// A follower for flow `info`; `retain` is false on a numbering-only flow.
    pub fn new(info: &FlowInfo, keys: TlsKeys, memory: MemoryUse, retain: bool) -> ConnectTunnel {
        ConnectTunnel {
            info: info.clone(),
            keys,
            memory,
            retain,
            held: Vec::new(),
            held_bytes: 0,
            inner: None,
            abandoned: None,
        }
    }

    /// One event of the flow, after the flow's HTTP/1 view saw it and said `state`.
    fn event(&mut self, state: TunnelState, dir: Direction, offset: u64, event: Event) {
        if self.abandoned.is_some() {
            return;
        }
        if let Some((inner, starts)) = &mut self.inner {
            return deliver(inner, *starts, dir, offset, event);
        }
        match state {
            TunnelState::None => {
                // A refused CONNECT: HTTP/1 goes on in the outer view.
                self.held.clear();
                self.held_bytes = 0;
            }
            TunnelState::Pending => {
                if let Event::Data(bytes, _) = &event {
                    self.held_bytes += bytes.len();
                }
                if self.held_bytes > MAX_HELD {
                    self.held = Vec::new();
                    self.abandoned = Some(format!(
                        "flow {}: more than {MAX_HELD} bytes crossed before the CONNECT was answered; the tunnel is not read",
                        self.info.id
                    ));
                    return;
                }
                self.held.push((dir, offset, event));
            }
            TunnelState::Open(starts) => {
                let views = if self.retain {
                    FlowViews::new(&self.info, self.memory.clone())
                } else {
                    FlowViews::numbering_only(&self.info, self.memory.clone())
                };
                let mut inner = Box::new(TlsLayer::in_tunnel(views, self.keys.clone(), &self.info));
                self.held.push((dir, offset, event));
                for (dir, offset, event) in std::mem::take(&mut self.held) {
                    deliver(&mut inner, starts, dir, offset, event);
                }
                self.held_bytes = 0;
                self.inner = Some((inner, starts));
            }
        }
    }

    /// Bytes of `dir` at outer `offset`; `state` is what the flow's HTTP/1 view says after them.
    pub(crate) fn data(
        &mut self,
        state: TunnelState,
        dir: Direction,
        offset: u64,
        bytes: &[u8],
        ts: u64,
    ) {
        if let Some((inner, starts)) = &mut self.inner {
            // The common case once open: no copy.
            return data_from(inner, starts[dir.index()], dir, offset, bytes, ts);
        }
        if state == TunnelState::None && self.held.is_empty() {
            return;
        }
        self.event(state, dir, offset, Event::Data(bytes.to_vec(), ts));
    }

    /// `dir` ended with a FIN at outer `offset`.
    pub(crate) fn fin(&mut self, state: TunnelState, dir: Direction, offset: u64, ts: u64) {
        self.event(state, dir, offset, Event::Fin(ts));
    }

    /// The connection was reset.
    pub(crate) fn reset(&mut self, state: TunnelState, dir: Direction, offset: u64, ts: u64) {
        self.event(state, dir, offset, Event::Reset(ts));
    }

    /// `missing` bytes of `dir` are not in the capture.
    pub(crate) fn gap(&mut self, state: TunnelState, dir: Direction, offset: u64, missing: u64) {
        self.event(state, dir, offset, Event::Gap(missing));
    }

    /// A fault comment on the packet at outer `offset` of `dir`: the tunnel's when it lies inside.
    pub(crate) fn comment(
        &mut self,
        state: TunnelState,
        dir: Direction,
        offset: u64,
        text: &str,
        ts: u64,
    ) {
        self.event(state, dir, offset, Event::Comment(text.to_string(), ts));
    }

    /// The tunnel's timing, for a flow whose tunnel was decrypted: its exchanges count
    /// plaintext bytes after the tunnel start, so the flow's timeline must count them so too
    /// ([`FlowTimeline::splice`]). `None` for a plain or no tunnel (the flow's own offsets hold).
    pub fn take_timeline(&mut self) -> Option<([u64; 2], FlowTimeline)> {
        let (inner, starts) = self.inner.as_mut()?;
        if !inner.decrypted() {
            return None;
        }
        Some((*starts, inner.inner_mut().take_timeline()))
    }

    /// Ends the tunnel's connection. `None` when no tunnel opened or it carried nothing
    /// `inspect` reads (no exchange, no HTTP/2, no warning): the flow then reads as before.
    pub fn finish(self) -> Option<TunnelOutcome> {
        if let Some(why) = self.abandoned {
            return Some(TunnelOutcome {
                http: FlowOutcome {
                    exchanges: Vec::new(),
                    http: false,
                    warnings: vec![why],
                    faults: Vec::new(),
                    capture_missed: false,
                    open_at_end: false,
                    undecrypted: false,
                },
                h2: None,
            });
        }
        let (inner, starts) = self.inner?;
        let (views, tls_warnings) = inner.finish();
        let (mut http, h2) = views.finish(&self.info);
        http.warnings.extend(tls_warnings);
        if http.exchanges.is_empty() && h2.is_none() && http.warnings.is_empty() {
            return None;
        }
        // Offsets back in the outer streams, where the flow's timeline counts them (a decrypted
        // tunnel counts plaintext after its start: see [`Self::take_timeline`]).
        let [up, down] = starts;
        for ex in &mut http.exchanges {
            ex.request_range.0 += up;
            ex.request_range.1 = ex.request_range.1.map(|e| e + up);
            ex.response_range = ex
                .response_range
                .map(|(s, e)| (s + down, e.map(|e| e + down)));
            for note in &mut ex.faults {
                note.offset += if note.direction == Direction::ClientToUpstream.to_string() {
                    up
                } else {
                    down
                };
            }
        }
        Some(TunnelOutcome { http, h2 })
    }
}

/// Hands one event to the inner connection, in offsets counted from the tunnel start of its
/// direction; what lies before the start (the CONNECT and its answer) is left out.
fn deliver(
    inner: &mut TlsLayer<FlowViews>,
    starts: [u64; 2],
    dir: Direction,
    offset: u64,
    event: Event,
) {
    let start = starts[dir.index()];
    match event {
        Event::Data(bytes, ts) => data_from(inner, start, dir, offset, &bytes, ts),
        Event::Fin(ts) => inner.fin(dir, offset.saturating_sub(start), ts),
        Event::Reset(ts) => inner.reset(dir, offset.saturating_sub(start), ts),
        Event::Gap(missing) => {
            let end = offset + missing;
            if end > start {
                let at = offset.max(start);
                inner.gap(dir, at - start, end - at);
            }
        }
        Event::Comment(text, ts) if offset >= start => {
            inner.comment(dir, offset - start, &text, ts)
        }
        Event::Comment(..) => {}
    }
}

/// Hands on the part of `bytes` (at outer `offset`) from the tunnel start `start` on.
fn data_from(
    inner: &mut TlsLayer<FlowViews>,
    start: u64,
    dir: Direction,
    offset: u64,
    bytes: &[u8],
    ts: u64,
) {
    let end = offset + bytes.len() as u64;
    if end > start {
        let skip = start.saturating_sub(offset);
        // `skip < bytes.len()` since `offset + skip <= max(offset, start) < end`.
        inner.data(dir, offset + skip - start, &bytes[skip as usize..], ts);
    }
}
