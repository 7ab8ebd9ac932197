//! Turns capture events into a consistent TCP flow per leg (sequence numbers, ACKs, timestamps); pure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::event::{CaptureEvent, Leg, LegKey, Side};
use super::packet::{flags, TcpPacket, MSS};

/// The receiver acknowledges at least this often inside one large write, so the bytes in flight stay
/// well under the scaled window (65535 << 7) and tshark sees an ordinary bulk transfer.
const ACK_EVERY: usize = 1 << 20;

/// Whether a packet travels toward the proxy or away from it (pcapng `epb_flags` direction bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PacketDirection {
    /// Toward the proxy: from the client on the client leg, from the upstream on the upstream leg.
    Inbound,
    /// Sent by the proxy.
    Outbound,
}

/// One packet ready for a file format: what to write and where it belongs.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) leg: Leg,
    pub(crate) direction: PacketDirection,
    /// Nanoseconds since the Unix epoch, never less than the previous record's.
    pub(crate) at_nanos: u64,
    pub(crate) packet: TcpPacket,
    pub(crate) comment: Option<String>,
}

/// Why an event produced no packets.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlowError {
    /// The proxy reported traffic on a leg it never opened (or already closed): there are no
    /// addresses or sequence numbers to synthesize packets from.
    #[error("capture: event for {0}, which was never opened or is already closed")]
    UnknownLeg(LegKey),
}

#[derive(Debug)]
struct Flow {
    addr: [SocketAddr; 2],
    next_seq: [u32; 2],
    ip_id: [u16; 2],
}

/// Per-leg TCP state for every open leg, plus the last timestamp written.
///
/// Memory is bounded by the number of open legs: `Closed` forgets a flow.
#[derive(Debug, Default)]
pub(crate) struct FlowTable {
    flows: HashMap<LegKey, Flow>,
    last_nanos: u64,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Initiator => 0,
        Side::Responder => 1,
    }
}

/// Initial sequence number: distinct per connection, leg and side (a reused 4-tuple with a reused ISN
/// makes tshark report hundreds of retransmissions), yet reproducible run to run.
pub(crate) fn isn(key: LegKey, side: Side) -> u32 {
    let leg = match key.leg {
        Leg::Client => 0u64,
        Leg::Upstream => 1,
    };
    // splitmix64 finalizer.
    let mut z = key
        .conn
        .wrapping_mul(4)
        .wrapping_add(leg * 2 + idx(side) as u64)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

fn direction(leg: Leg, from: Side) -> PacketDirection {
    match (leg, from) {
        (Leg::Client, Side::Initiator) | (Leg::Upstream, Side::Responder) => {
            PacketDirection::Inbound
        }
        _ => PacketDirection::Outbound,
    }
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Both ends of a flow must be one IP family; a mixed pair is written as IPv6 (v4-mapped).
fn same_family(a: SocketAddr, b: SocketAddr) -> [SocketAddr; 2] {
    if a.is_ipv4() == b.is_ipv4() {
        return [a, b];
    }
    let v6 = |s: SocketAddr| match s {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    [v6(a), v6(b)]
}

/// Collects the packets of one event, attaching the comment to the first one.
struct Emit<'a> {
    key: LegKey,
    at_nanos: u64,
    comment: Option<String>,
    out: &'a mut Vec<Record>,
}

impl Emit<'_> {
    fn push(&mut self, flow: &mut Flow, from: Side, seq: u32, ack: u32, fl: u8, payload: Bytes) {
        let s = idx(from);
        let packet = TcpPacket {
            src: flow.addr[s],
            dst: flow.addr[1 - s],
            seq,
            ack,
            flags: fl,
            ip_id: flow.ip_id[s],
            payload,
        };
        flow.ip_id[s] = flow.ip_id[s].wrapping_add(1);
        self.out.push(Record {
            leg: self.key.leg,
            direction: direction(self.key.leg, from),
            at_nanos: self.at_nanos,
            packet,
            comment: self.comment.take(),
        });
    }

    /// A segment from `from` carrying `payload`, acknowledging everything the peer sent.
    fn segment(&mut self, flow: &mut Flow, from: Side, fl: u8, payload: Bytes) {
        let (s, p) = (idx(from), idx(from.peer()));
        let (seq, ack) = (flow.next_seq[s], flow.next_seq[p]);
        let consumed = payload.len() as u32 + u32::from(fl & (flags::SYN | flags::FIN) != 0);
        flow.next_seq[s] = seq.wrapping_add(consumed);
        self.push(flow, from, seq, ack, fl, payload);
    }
}

impl FlowTable {
    /// Number of legs currently tracked (open and not yet `Closed`).
    #[cfg(test)]
    pub(crate) fn open_legs(&self) -> usize {
        self.flows.len()
    }

    /// Appends to `out` the packets `event` stands for, in wire order.
    ///
    /// Errors only when the event names a leg that is not open; nothing is appended then.
    pub(crate) fn apply(
        &mut self,
        event: CaptureEvent,
        out: &mut Vec<Record>,
    ) -> Result<(), FlowError> {
        let (key, at, comment) = match &event {
            CaptureEvent::Closed { key } => {
                self.flows.remove(key);
                return Ok(());
            }
            CaptureEvent::Opened { key, at, .. } => (*key, *at, None),
            CaptureEvent::Data {
                key, at, comment, ..
            }
            | CaptureEvent::Fin {
                key, at, comment, ..
            }
            | CaptureEvent::Rst {
                key, at, comment, ..
            } => (*key, *at, comment.clone()),
        };
        if !matches!(event, CaptureEvent::Opened { .. }) && !self.flows.contains_key(&key) {
            return Err(FlowError::UnknownLeg(key));
        }
        self.last_nanos = self.last_nanos.max(nanos(at));
        let mut emit = Emit {
            key,
            at_nanos: self.last_nanos,
            comment,
            out,
        };
        match event {
            CaptureEvent::Opened {
                initiator,
                responder,
                ..
            } => {
                let mut flow = Flow {
                    addr: same_family(initiator, responder),
                    next_seq: [isn(key, Side::Initiator), isn(key, Side::Responder)],
                    ip_id: [0, 0],
                };
                let (i, r) = (Side::Initiator, Side::Responder);
                let syn_seq = flow.next_seq[0];
                flow.next_seq[0] = syn_seq.wrapping_add(1);
                emit.push(&mut flow, i, syn_seq, 0, flags::SYN, Bytes::new());
                emit.segment(&mut flow, r, flags::SYN | flags::ACK, Bytes::new());
                emit.segment(&mut flow, i, flags::ACK, Bytes::new());
                self.flows.insert(key, flow);
            }
            CaptureEvent::Data { from, bytes, .. } => {
                let flow = self.flows.get_mut(&key).ok_or(FlowError::UnknownLeg(key))?;
                if bytes.is_empty() {
                    // Nothing crossed the socket, but a fault annotation must not be lost: a pure ACK carries it.
                    if emit.comment.is_some() {
                        emit.segment(flow, from, flags::ACK, Bytes::new());
                    }
                    return Ok(());
                }
                let mut unacked = 0;
                let mut offset = 0;
                while offset < bytes.len() {
                    let end = (offset + MSS).min(bytes.len());
                    let last = end == bytes.len();
                    let fl = if last {
                        flags::ACK | flags::PSH
                    } else {
                        flags::ACK
                    };
                    emit.segment(flow, from, fl, bytes.slice(offset..end));
                    unacked += end - offset;
                    offset = end;
                    if last || unacked >= ACK_EVERY {
                        emit.segment(flow, from.peer(), flags::ACK, Bytes::new());
                        unacked = 0;
                    }
                }
            }
            CaptureEvent::Fin { from, .. } => {
                let flow = self.flows.get_mut(&key).ok_or(FlowError::UnknownLeg(key))?;
                emit.segment(flow, from, flags::FIN | flags::ACK, Bytes::new());
                emit.segment(flow, from.peer(), flags::ACK, Bytes::new());
            }
            CaptureEvent::Rst { from, .. } => {
                let flow = self.flows.get_mut(&key).ok_or(FlowError::UnknownLeg(key))?;
                // A reset consumes no sequence number and is never acknowledged.
                let (s, p) = (idx(from), idx(from.peer()));
                let (seq, ack) = (flow.next_seq[s], flow.next_seq[p]);
                emit.push(flow, from, seq, ack, flags::RST | flags::ACK, Bytes::new());
            }
            CaptureEvent::Closed { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const KEY: LegKey = LegKey {
        conn: 1,
        leg: Leg::Client,
    };

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_790_000_000_000 + ms)
    }

    fn opened(key: LegKey, at: SystemTime) -> CaptureEvent {
        CaptureEvent::Opened {
            key,
            initiator: "127.0.0.1:40000".parse().expect("addr"),
            responder: "127.0.0.1:3030".parse().expect("addr"),
            at,
        }
    }

    fn run(table: &mut FlowTable, events: Vec<CaptureEvent>) -> Vec<Record> {
        let mut out = Vec::new();
        for e in events {
            table.apply(e, &mut out).expect("known leg");
        }
        out
    }

    #[test]
    fn handshake_consumes_one_sequence_number_per_side() {
        let mut table = FlowTable::default();
        let out = run(&mut table, vec![opened(KEY, t(0))]);
        let (i, r) = (isn(KEY, Side::Initiator), isn(KEY, Side::Responder));
        let summary: Vec<_> = out
            .iter()
            .map(|r| (r.packet.flags, r.packet.seq, r.packet.ack))
            .collect();
        assert_eq!(
            summary,
            vec![
                (flags::SYN, i, 0),
                (flags::SYN | flags::ACK, r, i.wrapping_add(1)),
                (flags::ACK, i.wrapping_add(1), r.wrapping_add(1)),
            ]
        );
        assert_eq!(out[0].direction, PacketDirection::Inbound);
        assert_eq!(out[1].direction, PacketDirection::Outbound);
    }

    #[test]
    fn data_is_split_at_mss_and_acked_by_the_peer() {
        let mut table = FlowTable::default();
        let payload = Bytes::from(vec![7u8; MSS * 2 + 5]);
        let out = run(
            &mut table,
            vec![
                opened(KEY, t(0)),
                CaptureEvent::Data {
                    key: KEY,
                    from: Side::Responder,
                    bytes: payload,
                    at: t(1),
                    comment: Some("fault".into()),
                },
            ],
        );
        let data = &out[3..];
        assert_eq!(data.len(), 4);
        let lens: Vec<_> = data.iter().map(|r| r.packet.payload.len()).collect();
        assert_eq!(lens, vec![MSS, MSS, 5, 0]);
        assert_eq!(data[0].comment.as_deref(), Some("fault"));
        assert!(data[1..].iter().all(|r| r.comment.is_none()));
        assert_eq!(data[2].packet.flags, flags::ACK | flags::PSH);
        let r0 = isn(KEY, Side::Responder).wrapping_add(1);
        assert_eq!(data[1].packet.seq, r0.wrapping_add(MSS as u32));
        assert_eq!(data[3].packet.ack, r0.wrapping_add((MSS * 2 + 5) as u32));
        assert_eq!(data[3].packet.src, "127.0.0.1:40000".parse().expect("addr"));
    }

    #[test]
    fn fin_consumes_a_sequence_number_and_rst_does_not() {
        let mut table = FlowTable::default();
        let out = run(
            &mut table,
            vec![
                opened(KEY, t(0)),
                CaptureEvent::Fin {
                    key: KEY,
                    from: Side::Initiator,
                    at: t(1),
                    comment: None,
                },
                CaptureEvent::Rst {
                    key: KEY,
                    from: Side::Initiator,
                    at: t(2),
                    comment: Some("rst".into()),
                },
            ],
        );
        let i1 = isn(KEY, Side::Initiator).wrapping_add(1);
        assert_eq!(out[3].packet.seq, i1);
        assert_eq!(out[4].packet.ack, i1.wrapping_add(1), "peer acks the FIN");
        assert_eq!(out[5].packet.seq, i1.wrapping_add(1));
        assert_eq!(out[5].packet.flags, flags::RST | flags::ACK);
        assert_eq!(out[5].comment.as_deref(), Some("rst"));
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn timestamps_never_go_backwards() {
        let mut table = FlowTable::default();
        let other = LegKey {
            conn: 1,
            leg: Leg::Upstream,
        };
        let out = run(&mut table, vec![opened(KEY, t(10)), opened(other, t(5))]);
        assert!(out.windows(2).all(|w| w[0].at_nanos <= w[1].at_nanos));
        assert_eq!(out[5].at_nanos, out[0].at_nanos);
        assert_eq!(
            out[3].direction,
            PacketDirection::Outbound,
            "the proxy initiates the upstream leg"
        );
    }

    #[test]
    fn isn_differs_per_connection_leg_and_side() {
        let mut seen = std::collections::HashSet::new();
        for conn in 0..100 {
            for leg in [Leg::Client, Leg::Upstream] {
                for side in [Side::Initiator, Side::Responder] {
                    assert!(seen.insert(isn(LegKey { conn, leg }, side)));
                }
            }
        }
    }

    #[test]
    fn closed_forgets_the_leg_and_later_events_are_rejected() {
        let mut table = FlowTable::default();
        run(
            &mut table,
            vec![opened(KEY, t(0)), CaptureEvent::Closed { key: KEY }],
        );
        assert_eq!(table.open_legs(), 0);
        let mut out = Vec::new();
        let late = CaptureEvent::Fin {
            key: KEY,
            from: Side::Initiator,
            at: t(1),
            comment: None,
        };
        assert_eq!(table.apply(late, &mut out), Err(FlowError::UnknownLeg(KEY)));
        assert!(out.is_empty());
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let mut table = FlowTable::default();
        let event = CaptureEvent::Opened {
            key: KEY,
            initiator: "[::1]:40000".parse().expect("addr"),
            responder: "127.0.0.1:3030".parse().expect("addr"),
            at: t(0),
        };
        let out = run(&mut table, vec![event]);
        assert!(out
            .iter()
            .all(|r| r.packet.src.is_ipv6() && r.packet.dst.is_ipv6()));
    }
}
