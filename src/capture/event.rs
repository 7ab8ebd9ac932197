//! The vocabulary the proxy uses to tell the capture what crossed each leg's socket.

use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;

pub use crate::direction::Leg;

/// Who sent a packet on a leg, so sequence numbers advance on the right side.
///
/// Client leg: the initiator is the client. Upstream leg: the initiator is the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that sent the SYN.
    Initiator,
    /// The side that accepted the connection.
    Responder,
}

impl Side {
    /// The other end of the leg: the one that acknowledges what this side sends.
    pub fn peer(self) -> Side {
        match self {
            Side::Initiator => Side::Responder,
            Side::Responder => Side::Initiator,
        }
    }
}

/// Identifies one leg of one proxied connection: the key of its synthesized TCP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LegKey {
    /// Connection id, unique within a run (assigned by the proxy's accept loop).
    pub conn: u64,
    /// Which leg of that connection.
    pub leg: Leg,
}

impl fmt::Display for LegKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {} {}", self.conn, self.leg)
    }
}

/// Something that really happened on a leg's socket, reported by the pump after it happened.
///
/// The capture turns each event into synthesized TCP packets; it never sniffs the network, so what is
/// reported here is exactly what a reader of the capture will see.
#[derive(Clone, Debug)]
pub enum CaptureEvent {
    /// A leg was established: emits SYN, SYN-ACK, ACK.
    Opened {
        /// The leg this flow belongs to.
        key: LegKey,
        /// Address of the side that connected (client, or the proxy's local address on the upstream leg).
        initiator: SocketAddr,
        /// Address of the side that accepted (the proxy's listen address, or the upstream).
        responder: SocketAddr,
        /// When the connection was established.
        at: SystemTime,
    },
    /// Payload that crossed the leg's socket, from `from` (split into segments <= MSS).
    Data {
        /// The leg the bytes crossed.
        key: LegKey,
        /// Who wrote them.
        from: Side,
        /// Exactly the bytes that crossed the socket.
        bytes: Bytes,
        /// When they were written.
        at: SystemTime,
        /// Fault annotation for the first packet, if a fault shaped these bytes.
        comment: Option<String>,
    },
    /// `from` shut down its write half: FIN (consumes one sequence number).
    Fin {
        /// The leg that was half-closed.
        key: LegKey,
        /// Who shut down its write half.
        from: Side,
        /// When.
        at: SystemTime,
        /// Fault annotation, when the FIN was injected (e.g. a truncation).
        comment: Option<String>,
    },
    /// `from` aborted the leg: RST (seq = next seq of `from`).
    Rst {
        /// The leg that was reset.
        key: LegKey,
        /// Who reset it.
        from: Side,
        /// When.
        at: SystemTime,
        /// Fault annotation, when the reset was injected.
        comment: Option<String>,
    },
    /// Leg is gone; forget its flow state (bounded memory).
    Closed {
        /// The leg to forget.
        key: LegKey,
    },
}

impl CaptureEvent {
    /// The leg this event is about, for routing and log fields.
    pub fn key(&self) -> LegKey {
        match self {
            CaptureEvent::Opened { key, .. }
            | CaptureEvent::Data { key, .. }
            | CaptureEvent::Fin { key, .. }
            | CaptureEvent::Rst { key, .. }
            | CaptureEvent::Closed { key } => *key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_house_vocabulary() {
        assert_eq!(Leg::Client.to_string(), "client leg");
        assert_eq!(Leg::Upstream.to_string(), "upstream leg");
        let key = LegKey {
            conn: 3,
            leg: Leg::Upstream,
        };
        assert_eq!(key.to_string(), "connection 3 upstream leg");
        assert_eq!(Side::Initiator.peer(), Side::Responder);
    }
}
