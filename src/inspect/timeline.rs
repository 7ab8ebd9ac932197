//! When things happened on one flow: data arrival times by stream offset, FINs, RSTs, gaps and fault comments, for the HTML report's timelines.
//!
//! A third view beside HTTP/1 and HTTP/2 (see `flow_views`): it sees every reassembled byte range
//! and event with its capture timestamp. It keeps no payload, only bounded lists, so a long flow
//! costs at most [`MAX_MARKS`] marks per direction and [`MAX_EVENTS`] events: past that, marks are
//! thinned (every other one dropped), so the time found for an offset may be a little early.

use crate::direction::Direction;

/// Data marks kept per direction before thinning.
pub const MAX_MARKS: usize = 1024;
/// Events (FIN, RST, gap, fault comment) kept per flow.
pub const MAX_EVENTS: usize = 1000;

/// What happened at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The sender of the direction closed it (FIN).
    Fin,
    /// The sender of the direction reset the connection (RST).
    Reset,
    /// Bytes missing from the capture.
    Gap {
        /// How many.
        missing: u64,
    },
    /// A fault comment (pcapng packet comment) on a packet of the direction.
    Fault(String),
}

/// One event of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    /// Capture time, nanoseconds since the epoch.
    pub ns: u64,
    /// The direction of the packet.
    pub direction: Direction,
    /// Stream offset in that direction.
    pub offset: u64,
    /// What it was.
    pub kind: EventKind,
}

/// The timing of one flow, as the capture recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowTimeline {
    /// Flow id (see the report's `flows`).
    pub flow: u64,
    /// Time of the flow's first packet.
    pub opened_ns: u64,
    /// Time of the last data or event seen.
    pub last_ns: u64,
    /// Payload bytes seen per direction (0: client->upstream, 1: upstream->client).
    pub bytes: [u64; 2],
    /// FINs, RSTs, gaps and fault comments in capture order.
    pub events: Vec<TimelineEvent>,
    /// `(offset, ns)` of data chunks per direction, offsets increasing.
    marks: [Vec<(u64, u64)>; 2],
    /// Chunks seen per direction, and the current thinning stride.
    chunks: [u64; 2],
    stride: [u64; 2],
}

fn index(dir: Direction) -> usize {
    match dir {
        Direction::ClientToUpstream => 0,
        Direction::UpstreamToClient => 1,
    }
}

impl FlowTimeline {
    /// An empty timeline of flow `flow`, opened at `opened_ns`.
    pub fn new(flow: u64, opened_ns: u64) -> FlowTimeline {
        FlowTimeline {
            flow,
            opened_ns,
            last_ns: opened_ns,
            stride: [1, 1],
            ..FlowTimeline::default()
        }
    }

    /// In-order bytes of `dir` starting at `offset` arrived at `ns`.
    pub fn data(&mut self, dir: Direction, offset: u64, len: u64, ns: u64) {
        let i = index(dir);
        self.bytes[i] += len;
        self.last_ns = self.last_ns.max(ns);
        let stride = self.stride[i].max(1);
        if self.chunks[i] % stride == 0 {
            self.marks[i].push((offset, ns));
            if self.marks[i].len() >= MAX_MARKS {
                let mut n = 0;
                self.marks[i].retain(|_| {
                    n += 1;
                    n % 2 == 1
                });
                self.stride[i] = stride.saturating_mul(2);
            }
        }
        self.chunks[i] += 1;
    }

    /// An event of `dir` at stream offset `offset`.
    pub fn event(&mut self, dir: Direction, offset: u64, ns: u64, kind: EventKind) {
        self.last_ns = self.last_ns.max(ns);
        if self.events.len() < MAX_EVENTS {
            self.events.push(TimelineEvent {
                ns,
                direction: dir,
                offset,
                kind,
            });
        }
    }

    /// Counts each direction from `starts` on in `inner`'s offsets (shifted there) instead of
    /// this flow's: a CONNECT tunnel decrypted from a raw capture numbers its exchanges' bytes in
    /// plaintext after the tunnel start, and their times are found in the tunnel's own marks.
    pub fn splice(&mut self, starts: [u64; 2], inner: &FlowTimeline) {
        for (i, start) in starts.into_iter().enumerate() {
            self.marks[i].retain(|&(offset, _)| offset < start);
            let shifted = inner.marks[i].iter().map(|&(o, ns)| (o + start, ns));
            self.marks[i].extend(shifted);
        }
    }

    /// When the byte at `offset` of `dir` arrived (the chunk that carried it, or the last mark
    /// before it after thinning); `None` before any data.
    pub fn time_at(&self, dir: Direction, offset: u64) -> Option<u64> {
        let marks = &self.marks[index(dir)];
        let after = marks.partition_point(|&(o, _)| o <= offset);
        after.checked_sub(1).map(|i| marks[i].1)
    }

    /// When the last byte before `end` of `dir` arrived (a message ending at `end`).
    pub fn time_before(&self, dir: Direction, end: u64) -> Option<u64> {
        self.time_at(dir, end.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Direction = Direction::ClientToUpstream;

    #[test]
    fn an_offset_maps_to_the_chunk_that_carried_it() {
        let mut t = FlowTimeline::new(3, 100);
        t.data(UP, 0, 10, 110);
        t.data(UP, 10, 10, 120);
        t.event(UP, 20, 130, EventKind::Fin);
        assert_eq!(t.time_at(UP, 0), Some(110));
        assert_eq!(t.time_at(UP, 9), Some(110));
        assert_eq!(t.time_at(UP, 10), Some(120));
        assert_eq!(t.time_before(UP, 20), Some(120));
        assert_eq!(t.time_at(Direction::UpstreamToClient, 0), None);
        assert_eq!((t.bytes, t.last_ns, t.events.len()), ([20, 0], 130, 1));
    }

    #[test]
    fn long_flows_are_thinned_not_unbounded() {
        let mut t = FlowTimeline::new(1, 0);
        for k in 0..100_000u64 {
            t.data(UP, k * 10, 10, k);
        }
        assert!(t.marks[0].len() < MAX_MARKS, "{}", t.marks[0].len());
        let at = t.time_at(UP, 500_000).expect("a mark");
        assert!(at <= 50_000 && at > 50_000 - 2 * t.stride[0], "{at}");
        for _ in 0..(2 * MAX_EVENTS) {
            t.event(UP, 0, 0, EventKind::Reset);
        }
        assert_eq!(t.events.len(), MAX_EVENTS);
    }
}
