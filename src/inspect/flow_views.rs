//! One flow's consumer for the reassembler: the HTTP/1 view and the HTTP/2 view side by side, each deciding for itself whether the flow is its protocol.
//!
//! Both views see every byte in capture order; at most one of them recognises the flow (an
//! HTTP/1 request line, or the HTTP/2 client preface), the other lets the bytes pass. A flow
//! whose CONNECT was answered 2xx goes on inside its tunnel ([`ConnectTunnel`]), whose exchanges
//! join the flow's.

use super::body_store::MemoryUse;
use super::connect_tunnel::ConnectTunnel;
use super::exchange::{FlowHttp, FlowOutcome};
use super::h2_flow::{FlowH2, H2Outcome};
use super::reassembly::{FlowInfo, StreamConsumer};
use super::timeline::{EventKind, FlowTimeline};
use crate::direction::Direction;

/// The views of one flow.
pub struct FlowViews {
    http: FlowHttp,
    /// `None` on a flow read only to number its HTTP/1 exchanges ([`Self::numbering_only`]).
    h2: Option<FlowH2>,
    timeline: FlowTimeline,
    /// The connection inside a CONNECT tunnel; `None` inside a tunnel (one level is read).
    tunnel: Option<Box<ConnectTunnel>>,
}

impl FlowViews {
    /// Views of a new flow; retained bodies are accounted in `memory`.
    pub fn new(info: &FlowInfo, memory: MemoryUse) -> FlowViews {
        FlowViews {
            http: FlowHttp::new(info, memory.clone()),
            h2: Some(FlowH2::new(info, memory)),
            timeline: FlowTimeline::new(info.id, info.opened_ns),
            tunnel: None,
        }
    }

    /// Views of a flow on a leg `--leg` leaves out: its HTTP/1 exchanges are read (no body kept)
    /// only so that every exchange shown keeps the number it has in a report of every leg.
    pub fn numbering_only(info: &FlowInfo, memory: MemoryUse) -> FlowViews {
        FlowViews {
            http: FlowHttp::numbering_only(info, memory),
            h2: None,
            timeline: FlowTimeline::new(info.id, info.opened_ns),
            tunnel: None,
        }
    }

    /// These views, reading on inside a CONNECT tunnel with `tunnel`.
    pub fn following_tunnels(self, tunnel: ConnectTunnel) -> FlowViews {
        FlowViews {
            tunnel: Some(Box::new(tunnel)),
            ..self
        }
    }

    /// The flow's timing so far (taken before [`Self::finish`]; the HTML report draws it).
    pub fn take_timeline(&mut self) -> FlowTimeline {
        let mut timeline = std::mem::take(&mut self.timeline);
        if let Some((starts, inner)) = self.tunnel.as_mut().and_then(|t| t.take_timeline()) {
            timeline.splice(starts, &inner);
        }
        timeline
    }

    /// Ends the flow: what the HTTP/1 view found, and the HTTP/2 connection if it was one
    /// (the tunnel's exchanges and HTTP/2 connection are the flow's).
    pub fn finish(self, info: &FlowInfo) -> (FlowOutcome, Option<H2Outcome>) {
        let h2 = self.h2.and_then(|h2| h2.finish(info));
        let Some(inner) = self.tunnel.and_then(|t| t.finish()) else {
            return (self.http.finish(), h2);
        };
        let mut http = self.http.finish_before_tunnel();
        http.exchanges.extend(inner.http.exchanges);
        http.http |= inner.http.http;
        http.warnings.extend(inner.http.warnings);
        http.faults.extend(inner.http.faults);
        http.capture_missed |= inner.http.capture_missed;
        http.open_at_end |= inner.http.open_at_end;
        (http, h2.or(inner.h2))
    }
}

impl StreamConsumer for FlowViews {
    fn data(&mut self, dir: Direction, offset: u64, bytes: &[u8], ts_ns: u64) {
        self.http.data(dir, offset, bytes, ts_ns);
        if let Some(tunnel) = &mut self.tunnel {
            tunnel.data(self.http.tunnel_state(), dir, offset, bytes, ts_ns);
        }
        if let Some(h2) = &mut self.h2 {
            h2.data(dir, offset, bytes, ts_ns);
        }
        self.timeline.data(dir, offset, bytes.len() as u64, ts_ns);
    }

    fn fin(&mut self, dir: Direction, offset: u64, ts_ns: u64) {
        self.http.fin(dir, offset, ts_ns);
        if let Some(tunnel) = &mut self.tunnel {
            tunnel.fin(self.http.tunnel_state(), dir, offset, ts_ns);
        }
        if let Some(h2) = &mut self.h2 {
            h2.fin(dir, offset, ts_ns);
        }
        self.timeline.event(dir, offset, ts_ns, EventKind::Fin);
    }

    fn reset(&mut self, dir: Direction, offset: u64, ts_ns: u64) {
        self.http.reset(dir, offset, ts_ns);
        if let Some(tunnel) = &mut self.tunnel {
            tunnel.reset(self.http.tunnel_state(), dir, offset, ts_ns);
        }
        if let Some(h2) = &mut self.h2 {
            h2.reset(dir, offset, ts_ns);
        }
        self.timeline.event(dir, offset, ts_ns, EventKind::Reset);
    }

    fn gap(&mut self, dir: Direction, offset: u64, missing: u64) {
        self.http.gap(dir, offset, missing);
        if let Some(tunnel) = &mut self.tunnel {
            tunnel.gap(self.http.tunnel_state(), dir, offset, missing);
        }
        if let Some(h2) = &mut self.h2 {
            h2.gap(dir, offset, missing);
        }
        let at = self.timeline.last_ns;
        self.timeline
            .event(dir, offset, at, EventKind::Gap { missing });
    }

    fn comment(&mut self, dir: Direction, offset: u64, text: &str, ts_ns: u64) {
        self.http.comment(dir, offset, text, ts_ns);
        if let Some(tunnel) = &mut self.tunnel {
            tunnel.comment(self.http.tunnel_state(), dir, offset, text, ts_ns);
        }
        if let Some(h2) = &mut self.h2 {
            h2.comment(dir, offset, text, ts_ns);
        }
        self.timeline
            .event(dir, offset, ts_ns, EventKind::Fault(text.to_string()));
    }
}
