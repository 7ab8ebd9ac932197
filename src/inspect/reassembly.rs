//! Turns captured TCP segments into ordered byte streams, per flow and per direction.
//!
//! A flow is a 4-tuple on one capture interface plus a SYN generation: a SYN with a new initial
//! sequence number on a 4-tuple that was already used starts a new flow. Each direction keeps the
//! first copy of every byte (retransmissions and overlaps are dropped) and holds out-of-order
//! segments until the gap fills, at most [`MAX_PENDING`] bytes; past that the gap is declared lost.
//! Bytes the capture never saw are also declared lost where the stream shows they were sent: the
//! peer acknowledged them, a RST's sequence number lies past them, or the FIN does (a capture
//! that dropped packets, e.g. `tshark -i lo` under load, misses the tail of an upload).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::http::{looks_like_http1_request, Detection, Direction};
use super::packet::{tcp_flags, TcpSegment};

/// Out-of-order bytes held per direction before a hole is declared lost. Bounds memory per flow.
pub const MAX_PENDING: usize = 16 * 1024 * 1024;

/// What a flow is, as far as the capture tells.
#[derive(Debug, Clone)]
pub struct FlowInfo {
    /// Sequential id in order of first appearance, from 0: Wireshark's `tcp.stream` index of the
    /// same conversation, so `tshark -Y 'tcp.stream == N'` shows flow N.
    pub id: u64,
    /// pcapng interface name of its packets, if any.
    pub interface: Option<String>,
    /// The side that opened the connection (sent the SYN, or sent the first request).
    pub client: SocketAddr,
    /// The side that accepted it.
    pub server: SocketAddr,
    /// Time of the flow's first packet, nanoseconds since the epoch.
    pub opened_ns: u64,
    /// True when the SYN was captured (offsets then count from the real initial sequence number).
    pub saw_syn: bool,
    /// The sequence number of the client's SYN, when it was captured: faultline derives it from
    /// the connection and the leg, so it names the connection (see `connection_id`).
    pub client_isn: Option<u32>,
}

/// Where a segment was captured: a flow never spans two pcapng sections (each is a capture of its
/// own, e.g. in `cat a.pcapng b.pcapng`) nor two interfaces (faultline's two legs).
#[derive(Debug, Clone, Copy, Default)]
pub struct CapturedOn<'a> {
    /// pcapng section (0 in classic pcap).
    pub section: u32,
    /// pcapng interface name, if any.
    pub interface: Option<&'a str>,
}

/// Receives a flow's streams in order. `offset`s are absolute in the direction's byte stream.
pub trait StreamConsumer {
    /// In-order bytes of one direction, starting at `offset`.
    fn data(&mut self, dir: Direction, offset: u64, bytes: &[u8], ts_ns: u64);
    /// The direction ended with a FIN after `offset` bytes.
    fn fin(&mut self, dir: Direction, offset: u64, ts_ns: u64);
    /// The sender of `dir` reset the connection at stream offset `offset`.
    fn reset(&mut self, dir: Direction, offset: u64, ts_ns: u64);
    /// `missing` bytes at `offset` never arrived; later bytes follow.
    fn gap(&mut self, dir: Direction, offset: u64, missing: u64);
    /// A packet comment (pcapng `opt_comment`) on a packet of `dir` at stream offset `offset`.
    fn comment(&mut self, dir: Direction, offset: u64, text: &str, ts_ns: u64);
}

/// A flow nobody reads (`None`) is still reassembled and numbered, its bytes dropped: `inspect
/// --leg` numbers flows as a full inspection does.
impl<C: StreamConsumer> StreamConsumer for Option<C> {
    fn data(&mut self, dir: Direction, offset: u64, bytes: &[u8], ts_ns: u64) {
        if let Some(c) = self {
            c.data(dir, offset, bytes, ts_ns);
        }
    }
    fn fin(&mut self, dir: Direction, offset: u64, ts_ns: u64) {
        if let Some(c) = self {
            c.fin(dir, offset, ts_ns);
        }
    }
    fn reset(&mut self, dir: Direction, offset: u64, ts_ns: u64) {
        if let Some(c) = self {
            c.reset(dir, offset, ts_ns);
        }
    }
    fn gap(&mut self, dir: Direction, offset: u64, missing: u64) {
        if let Some(c) = self {
            c.gap(dir, offset, missing);
        }
    }
    fn comment(&mut self, dir: Direction, offset: u64, text: &str, ts_ns: u64) {
        if let Some(c) = self {
            c.comment(dir, offset, text, ts_ns);
        }
    }
}

/// One direction's reassembly state.
#[derive(Debug, Default)]
struct DirState {
    /// Sequence number of stream offset 0.
    base: Option<u32>,
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    fin_at: Option<u64>,
    fin_done: bool,
    /// Bytes of the payload received so far (to tell "nothing sent yet" for direction guessing).
    seen_payload: bool,
    /// Stream offset up to which the sender is known to have sent bytes: the peer's highest
    /// acknowledgment, or where the sender's RST lay. Past `next` at the end, the capture missed them.
    sent_to: u64,
}

impl DirState {
    /// Stream offset of `seq`, unwrapped around the next expected offset (handles 32-bit wrap).
    fn offset_of(&self, seq: u32) -> Option<u64> {
        let base = self.base?;
        let rel = seq.wrapping_sub(base);
        let delta = rel.wrapping_sub(self.next as u32) as i32;
        let off = self.next as i64 + i64::from(delta);
        u64::try_from(off).ok()
    }

    fn segment<C: StreamConsumer>(
        &mut self,
        dir: Direction,
        seg: &TcpSegment<'_>,
        ts: u64,
        sink: &mut C,
    ) {
        let (seg_seq, payload) = (seg.seq, seg.payload);
        let (syn, fin) = (seg.has(tcp_flags::SYN), seg.has(tcp_flags::FIN));
        if syn {
            if self.base.is_none() || (self.next == 0 && self.pending.is_empty()) {
                self.base = Some(seg_seq.wrapping_add(1));
            }
        } else if self.base.is_none() {
            self.base = Some(seg_seq);
        }
        let data_seq = if syn {
            seg_seq.wrapping_add(1)
        } else {
            seg_seq
        };
        let Some(off) = self.offset_of(data_seq) else {
            return;
        };
        let end = off + payload.len() as u64;
        if fin && self.fin_at.is_none() {
            self.fin_at = Some(end);
        }
        if !payload.is_empty() && end > self.next {
            self.seen_payload = true;
            if off <= self.next {
                let skip = (self.next - off) as usize;
                sink.data(dir, self.next, &payload[skip..], ts);
                self.next = end;
                self.drain(dir, ts, sink);
            } else {
                self.hold(off, payload);
                if self.pending_bytes > MAX_PENDING {
                    self.skip_gap(dir, ts, sink);
                }
            }
        }
        self.check_fin(dir, ts, sink);
    }

    /// Buffers an out-of-order segment, keeping the first copy of bytes already held.
    fn hold(&mut self, off: u64, payload: &[u8]) {
        let (off, payload) = match self.pending.get(&off) {
            Some(existing) if existing.len() >= payload.len() => return,
            Some(existing) => (off + existing.len() as u64, &payload[existing.len()..]),
            None => (off, payload),
        };
        if !self.pending.contains_key(&off) {
            self.pending_bytes += payload.len();
            self.pending.insert(off, payload.to_vec());
        }
    }

    fn drain<C: StreamConsumer>(&mut self, dir: Direction, ts: u64, sink: &mut C) {
        while let Some(entry) = self.pending.first_entry() {
            let off = *entry.key();
            if off > self.next {
                break;
            }
            let bytes = entry.remove();
            self.pending_bytes -= bytes.len();
            let end = off + bytes.len() as u64;
            if end > self.next {
                let skip = (self.next - off) as usize;
                sink.data(dir, self.next, &bytes[skip..], ts);
                self.next = end;
            }
        }
    }

    /// Declares the hole before the first held segment lost and delivers what follows it.
    fn skip_gap<C: StreamConsumer>(&mut self, dir: Direction, ts: u64, sink: &mut C) {
        if let Some((&off, _)) = self.pending.first_key_value() {
            if off > self.next {
                sink.gap(dir, self.next, off - self.next);
                self.next = off;
            }
            self.drain(dir, ts, sink);
        }
    }

    fn check_fin<C: StreamConsumer>(&mut self, dir: Direction, ts: u64, sink: &mut C) {
        if let Some(at) = self.fin_at {
            if !self.fin_done && self.next >= at {
                self.fin_done = true;
                sink.fin(dir, at, ts);
            }
        }
    }

    /// Notes that the sender is known to have sent the bytes before stream offset `end`.
    fn sent_up_to(&mut self, end: Option<u64>) {
        if let Some(end) = end {
            self.sent_to = self.sent_to.max(end);
        }
    }

    /// Declares lost what the capture never saw: the holes before held segments (those are
    /// delivered), then the bytes past the last captured one that the peer acknowledged or a RST
    /// lay beyond. A FIN takes a sequence number of its own, so an acknowledgment of the FIN or
    /// a RST after it (one past the FIN's offset) is no missing byte.
    fn declare_unseen<C: StreamConsumer>(&mut self, dir: Direction, ts: u64, sink: &mut C) {
        while !self.pending.is_empty() {
            self.skip_gap(dir, ts, sink);
        }
        let end = match self.fin_at {
            Some(at) => self.sent_to.min(at),
            None => self.sent_to,
        };
        if end > self.next && self.base.is_some() {
            sink.gap(dir, self.next, end - self.next);
            self.next = end;
        }
    }

    /// At the end of the flow: whatever is still held is delivered after declaring the holes.
    fn flush<C: StreamConsumer>(&mut self, dir: Direction, ts: u64, sink: &mut C) {
        self.declare_unseen(dir, ts, sink);
        if let Some(at) = self.fin_at {
            if !self.fin_done && at > self.next {
                sink.gap(dir, self.next, at - self.next);
                self.next = at;
            }
        }
        self.check_fin(dir, ts, sink);
    }
}

/// The two endpoints of a flow, ordered so both directions map to the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TupleKey {
    section: u32,
    interface: Option<String>,
    low: SocketAddr,
    high: SocketAddr,
}

#[derive(Debug)]
struct OpenFlow<C> {
    info: FlowInfo,
    /// Index 0: bytes sent by `info.client`; 1: by `info.server`.
    dirs: [DirState; 2],
    /// Sequence number of the client's SYN, to tell a retransmitted SYN from a new connection.
    client_syn: Option<u32>,
    /// The endpoints are known for sure (from a SYN or from the first payload's content).
    roles_known: bool,
    consumer: Option<C>,
}

/// All flows of a capture: open flows with their consumers, closed ones as small tombstones.
pub struct FlowTable<C> {
    flows: HashMap<TupleKey, OpenFlow<C>>,
    next_id: u64,
    last_ts: u64,
}

impl<C: StreamConsumer> Default for FlowTable<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: StreamConsumer> FlowTable<C> {
    /// An empty table.
    pub fn new() -> Self {
        FlowTable {
            flows: HashMap::new(),
            next_id: 0,
            last_ts: 0,
        }
    }

    /// Routes one segment. `make` creates the consumer of a new flow; `done` receives a flow's consumer
    /// once both directions ended (FIN each way) or it was reset, so its memory can be released.
    pub fn segment(
        &mut self,
        on: CapturedOn<'_>,
        ts: u64,
        seg: &TcpSegment<'_>,
        comment: Option<&str>,
        make: &mut impl FnMut(&FlowInfo) -> C,
        done: &mut impl FnMut(FlowInfo, C),
    ) {
        self.last_ts = self.last_ts.max(ts);
        let (low, high) = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let key = TupleKey {
            section: on.section,
            interface: on.interface.map(str::to_owned),
            low,
            high,
        };
        let syn = seg.has(tcp_flags::SYN);
        let pure_syn = syn && !seg.has(tcp_flags::ACK);
        if let Some(flow) = self.flows.get_mut(&key) {
            let new_generation = pure_syn && flow.client_syn != Some(seg.seq);
            if new_generation {
                if let Some(old) = self.flows.remove(&key) {
                    Self::finish(old, self.last_ts, done);
                }
            }
        }
        let flow = match self.flows.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                // A SYN-ACK names the client as its destination; otherwise guess the sender.
                let (client, server) = if syn && seg.has(tcp_flags::ACK) {
                    (seg.dst, seg.src)
                } else {
                    (seg.src, seg.dst)
                };
                let info = FlowInfo {
                    id: self.next_id,
                    interface: on.interface.map(str::to_owned),
                    client,
                    server,
                    opened_ns: ts,
                    saw_syn: syn,
                    client_isn: None,
                };
                self.next_id += 1;
                let consumer = make(&info);
                e.insert(OpenFlow {
                    info,
                    dirs: [DirState::default(), DirState::default()],
                    client_syn: pure_syn.then_some(seg.seq),
                    roles_known: syn,
                    consumer: Some(consumer),
                })
            }
        };
        let Some(consumer) = flow.consumer.as_mut() else {
            return; // tombstone: late retransmissions of a finished flow
        };
        if !flow.roles_known && !seg.payload.is_empty() {
            flow.roles_known = true;
            let from_server = seg.src == flow.info.server;
            let looks_like_request = looks_like_http1_request(seg.payload) == Detection::Http1;
            let looks_like_response = seg.payload.starts_with(b"HTTP/");
            let swap = (from_server && looks_like_request)
                || (!from_server && looks_like_response && !flow.dirs[1].seen_payload);
            if swap {
                std::mem::swap(&mut flow.info.client, &mut flow.info.server);
                flow.dirs.swap(0, 1);
            }
        }
        if pure_syn && seg.src == flow.info.client {
            flow.client_syn.get_or_insert(seg.seq);
        }
        let (idx, dir) = if seg.src == flow.info.client {
            (0, Direction::ClientToUpstream)
        } else {
            (1, Direction::UpstreamToClient)
        };
        let rst = seg.has(tcp_flags::RST);
        if seg.has(tcp_flags::ACK) {
            // What this segment acknowledges is the peer's stream: the peer sent it.
            let peer = &mut flow.dirs[1 - idx];
            let acked = peer.offset_of(seg.ack);
            peer.sent_up_to(acked);
        }
        let state = &mut flow.dirs[idx];
        if !rst {
            state.segment(dir, seg, ts, consumer);
        } else if state.base.is_none() {
            state.base = Some(seg.seq);
        }
        if let Some(text) = comment {
            let data_seq = if syn {
                seg.seq.wrapping_add(1)
            } else {
                seg.seq
            };
            let offset = state.offset_of(data_seq).unwrap_or(state.next);
            consumer.comment(dir, offset, text, ts);
        }
        let finished = rst || flow.dirs.iter().all(|d| d.fin_done);
        if rst {
            let offset = flow.dirs[idx]
                .offset_of(seg.seq)
                .unwrap_or(flow.dirs[idx].next);
            flow.dirs[idx].sent_up_to(Some(offset));
            // What the capture missed before the reset is said first: a body it missed the end
            // of was cut by the capture, not by the reset (a `tshark -i lo` capture that dropped
            // an upload's tail made inspect call the upload short).
            let [client, server] = &mut flow.dirs;
            client.declare_unseen(Direction::ClientToUpstream, ts, consumer);
            server.declare_unseen(Direction::UpstreamToClient, ts, consumer);
            consumer.reset(dir, offset, ts);
        }
        if finished {
            let info = flow.info.clone();
            let mut tombstone = OpenFlow {
                info,
                dirs: [DirState::default(), DirState::default()],
                client_syn: flow.client_syn,
                roles_known: true,
                consumer: None,
            };
            std::mem::swap(flow, &mut tombstone);
            Self::finish(tombstone, ts, done);
        }
    }

    fn finish(mut flow: OpenFlow<C>, ts: u64, done: &mut impl FnMut(FlowInfo, C)) {
        if let Some(mut consumer) = flow.consumer.take() {
            let [client, server] = &mut flow.dirs;
            client.flush(Direction::ClientToUpstream, ts, &mut consumer);
            server.flush(Direction::UpstreamToClient, ts, &mut consumer);
            flow.info.client_isn = flow.client_syn;
            done(flow.info, consumer);
        }
    }

    /// End of capture: hands every still-open flow to `done`, in order of flow id.
    pub fn finish_all(&mut self, done: &mut impl FnMut(FlowInfo, C)) {
        let mut open: Vec<OpenFlow<C>> = self
            .flows
            .drain()
            .map(|(_, f)| f)
            .filter(|f| f.consumer.is_some())
            .collect();
        open.sort_by_key(|f| f.info.id);
        for flow in open {
            Self::finish(flow, self.last_ts, done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug)]
    struct Collect {
        streams: [Vec<u8>; 2],
        events: Vec<String>,
    }

    fn idx(dir: Direction) -> usize {
        match dir {
            Direction::ClientToUpstream => 0,
            Direction::UpstreamToClient => 1,
        }
    }

    impl StreamConsumer for Collect {
        fn data(&mut self, dir: Direction, offset: u64, bytes: &[u8], _: u64) {
            assert_eq!(offset as usize, self.streams[idx(dir)].len(), "in order");
            self.streams[idx(dir)].extend_from_slice(bytes);
        }
        fn fin(&mut self, dir: Direction, offset: u64, _: u64) {
            self.events.push(format!("fin {dir} {offset}"));
        }
        fn reset(&mut self, dir: Direction, offset: u64, _: u64) {
            self.events.push(format!("rst {dir} {offset}"));
        }
        fn gap(&mut self, dir: Direction, offset: u64, missing: u64) {
            self.events.push(format!("gap {dir} {offset}+{missing}"));
            self.streams[idx(dir)].resize((offset + missing) as usize, b'?');
        }
        fn comment(&mut self, dir: Direction, offset: u64, text: &str, _: u64) {
            self.events.push(format!("comment {dir} {offset} {text}"));
        }
    }

    const C: &str = "10.0.0.1:40000";
    const S: &str = "10.0.0.2:80";

    fn seg<'a>(from_client: bool, seq: u32, flags: u8, payload: &'a [u8]) -> TcpSegment<'a> {
        let (c, s) = (C.parse().expect("addr"), S.parse().expect("addr"));
        let (src, dst) = if from_client { (c, s) } else { (s, c) };
        TcpSegment {
            src,
            dst,
            seq,
            ack: 0,
            flags,
            payload,
        }
    }

    fn run(segs: &[TcpSegment<'_>]) -> Vec<(FlowInfo, Collect)> {
        let mut table = FlowTable::new();
        let mut out = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let comment = (s.payload == b"NOTE").then_some("note");
            table.segment(
                CapturedOn::default(),
                i as u64,
                s,
                comment,
                &mut |_| Collect::default(),
                &mut |i, c| out.push((i, c)),
            );
        }
        table.finish_all(&mut |i, c| out.push((i, c)));
        out
    }

    #[test]
    fn retransmissions_overlaps_and_reordering_are_reassembled() {
        use tcp_flags::*;
        let isn = u32::MAX - 3; // the stream wraps the 32-bit sequence space
        let d = isn.wrapping_add(1);
        let flows = run(&[
            seg(true, isn, SYN, b""),
            seg(false, 500, SYN | ACK, b""),
            seg(true, d.wrapping_add(6), ACK, b"ghij"), // ahead of a hole
            seg(true, d, ACK, b"abc"),                  // in order
            seg(true, d, ACK, b"XYZ"),                  // retransmission, first copy wins
            seg(true, d.wrapping_add(2), ACK, b"cdefgh"), // overlap fills the hole
            seg(true, d.wrapping_add(10), FIN | ACK, b""),
            seg(false, 501, ACK, b"HTTP"),
            seg(false, 505, FIN | ACK, b""),
        ]);
        assert_eq!(flows.len(), 1);
        let (info, c) = &flows[0];
        assert!(info.saw_syn);
        assert_eq!(info.client, C.parse().expect("addr"));
        assert_eq!(c.streams[0], b"abcdefghij");
        assert_eq!(c.streams[1], b"HTTP");
        assert_eq!(
            c.events,
            vec!["fin client->upstream 10", "fin upstream->client 4"]
        );
    }

    #[test]
    fn reused_tuple_with_new_syn_is_a_new_flow_and_rst_closes() {
        use tcp_flags::*;
        let flows = run(&[
            seg(true, 100, SYN, b""),
            seg(true, 101, ACK, b"one"),
            seg(true, 104, RST, b""),
            seg(true, 104, ACK, b"late"), // after the reset: ignored
            seg(true, 9000, SYN, b""),
            seg(true, 9000, SYN, b""), // retransmitted SYN: same flow
            seg(true, 9001, ACK, b"two"),
            seg(true, 9004, ACK, b"NOTE"),
        ]);
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].1.streams[0], b"one");
        assert_eq!(flows[0].1.events, vec!["rst client->upstream 3"]);
        assert_eq!(flows[1].0.id, 1);
        assert_eq!(flows[1].1.streams[0], b"twoNOTE");
        assert_eq!(flows[1].1.events, vec!["comment client->upstream 3 note"]);
    }

    #[test]
    fn missing_syn_uses_first_seq_and_request_decides_roles() {
        use tcp_flags::*;
        let flows = run(&[
            seg(false, 7000, ACK, b""), // server speaks first (a bare ACK)
            seg(true, 50, ACK, b"GET / HTTP/1.1\r\n\r\n"),
            seg(true, 68 + 5, ACK, b"tail"), // hole of 5 bytes never filled
        ]);
        let (info, c) = &flows[0];
        assert_eq!(info.client, C.parse().expect("addr"));
        assert!(!info.saw_syn);
        assert_eq!(c.streams[0], b"GET / HTTP/1.1\r\n\r\n?????tail");
        assert_eq!(c.events, vec!["gap client->upstream 18+5"]);
    }

    #[test]
    fn acknowledged_bytes_the_capture_never_saw_are_a_gap_but_a_fin_and_a_reset_after_it_are_not() {
        use tcp_flags::*;
        let acking = |from_client, seq, ack, flags, payload| TcpSegment {
            ack,
            ..seg(from_client, seq, flags, payload)
        };
        // The server acknowledges 10 bytes of which the capture holds 3, then the client resets.
        let lost = run(&[
            seg(true, 100, SYN, b""),
            acking(false, 500, 101, SYN | ACK, b""),
            acking(true, 101, 501, ACK, b"abc"),
            acking(false, 501, 111, ACK, b""),
            acking(true, 111, 501, RST | ACK, b""),
        ]);
        assert_eq!(
            lost[0].1.events,
            vec!["gap client->upstream 3+7", "rst client->upstream 10"]
        );
        // Every byte captured; the FIN acknowledged (one past the data) and a reset after it.
        let whole = run(&[
            seg(true, 100, SYN, b""),
            acking(false, 500, 101, SYN | ACK, b""),
            acking(true, 101, 501, ACK, b"abc"),
            acking(true, 104, 501, FIN | ACK, b""),
            acking(false, 501, 105, ACK, b""),
            acking(true, 105, 501, RST, b""),
        ]);
        assert_eq!(
            whole[0].1.events,
            vec!["fin client->upstream 3", "rst client->upstream 4"]
        );
    }
}
