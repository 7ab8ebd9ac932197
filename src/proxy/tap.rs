//! The tap: translates what a connection's pumps did (read, wrote, half-closed, reset) into
//! capture events on the right leg, from the right side.
//!
//! Reads land on the leg the bytes came from, writes on the leg they went to, so the two legs of a
//! connection differ exactly where a fault held bytes back or cut the stream.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;

use super::record_tap::{RawEvents, RawRecorder};
use crate::capture::{CaptureEvent, CaptureSink, Leg, LegKey, Side};
use crate::direction::Direction;

/// One connection's view of the capture sink; every method is a no-op without a capture.
///
/// A leg whose TLS is recorded raw (`capture_tls = "raw"`, see `record_tap`) gets its bytes from
/// its record tap, which queues them; every method here first releases that queue, so the
/// capture keeps each leg's events in the order they happened. The plaintext the pumps report
/// for such a leg is not recorded; a fault's note rides on the ciphertext that carried it.
#[derive(Debug, Clone)]
pub struct Tap {
    sink: Option<CaptureSink>,
    conn: u64,
    raw: Option<Arc<RawEvents>>,
}

impl Tap {
    /// A tap for connection `conn`.
    pub fn new(sink: Option<CaptureSink>, conn: u64) -> Self {
        let raw = sink.is_some().then(Arc::default);
        Tap { sink, conn, raw }
    }

    /// Records `leg` raw from now on: the returned recorder goes to the leg's record tap. `None`
    /// without a capture.
    pub fn raw_recorder(&self, leg: Leg) -> Option<RawRecorder> {
        self.raw.as_ref().map(|raw| raw.recorder(leg))
    }

    /// Queues every raw event taken so far, in order (`attach`: a note for the last bytes
    /// faultline wrote on that leg, the ciphertext that carried the bytes a fault shaped), then
    /// the event `own` makes of a note that found no such bytes; then waits for the capture's
    /// budget. Nothing is awaited before every event is queued, so a pump dropped while this
    /// waits (a connection ending drops its pumps wherever they are) loses none of them.
    async fn record_with(
        &self,
        attach: Option<(Leg, String)>,
        own: impl FnOnce(Option<String>) -> Option<CaptureEvent>,
    ) {
        let Some(sink) = &self.sink else {
            return;
        };
        let Some(raw) = self.raw.as_ref().filter(|raw| raw.any_raw()) else {
            let owed = sink.enqueue_all(own(attach.map(|(_, note)| note)));
            sink.pay(owed).await;
            return;
        };
        let owed = {
            // Taking and queueing under one lock keeps each leg's bytes in order across pumps.
            let _in_order = raw.releasing.lock().unwrap_or_else(PoisonError::into_inner);
            let taken = raw.take();
            let mut note_at = attach.as_ref().and_then(|(leg, _)| {
                taken
                    .iter()
                    .rposition(|e| e.leg == *leg && e.from == proxy_side(*leg))
            });
            let mut note = attach.map(|(_, note)| note);
            let mut events = Vec::with_capacity(taken.len() + 1);
            for (i, event) in taken.into_iter().enumerate() {
                let comment = if note_at == Some(i) {
                    note_at = None;
                    note.take()
                } else {
                    None
                };
                events.push(CaptureEvent::Data {
                    key: self.key(event.leg),
                    from: event.from,
                    bytes: event.bytes,
                    at: event.at,
                    comment,
                });
            }
            events.extend(own(note));
            sink.enqueue_all(events)
        };
        sink.pay(owed).await;
    }

    /// Records `event` after the raw events queued before it.
    async fn record(&self, event: CaptureEvent) {
        self.record_with(None, |_| Some(event)).await;
    }

    /// Whether `leg` is recorded raw (its plaintext is not recorded).
    fn is_raw(&self, leg: Leg) -> bool {
        self.raw.as_ref().is_some_and(|raw| raw.is_raw(leg))
    }

    /// Whether anything is recorded: without a capture, relays need not see the bytes.
    pub fn is_recording(&self) -> bool {
        self.sink.is_some()
    }

    fn key(&self, leg: Leg) -> LegKey {
        LegKey {
            conn: self.conn,
            leg,
        }
    }

    /// A leg was established: `initiator` connected to `responder`.
    pub async fn opened(&self, leg: Leg, initiator: SocketAddr, responder: SocketAddr) {
        if self.sink.is_none() {
            return;
        }
        self.record(CaptureEvent::Opened {
            key: self.key(leg),
            initiator,
            responder,
            at: SystemTime::now(),
        })
        .await;
    }

    /// Bytes read from the source of `direction` (they crossed the source leg).
    pub async fn received(&self, direction: Direction, bytes: &Bytes) {
        let (leg, from) = source_of(direction);
        self.data(leg, from, bytes, None).await;
    }

    /// Bytes written to the destination of `direction`, with the fault note that shaped them.
    pub async fn relayed(&self, direction: Direction, bytes: &Bytes, comment: Option<String>) {
        let (leg, from) = destination_of(direction);
        self.data(leg, from, bytes, comment).await;
    }

    /// Bytes a peer sent on `leg` while faultline was draining it before a clean close.
    pub async fn drained(&self, leg: Leg, bytes: &Bytes) {
        self.data(leg, peer_side(leg), bytes, None).await;
    }

    /// A fault note with no bytes of its own (a stall that holds a direction for good).
    pub async fn note(&self, direction: Direction, comment: String) {
        let (leg, from) = destination_of(direction);
        self.data(leg, from, &Bytes::new(), Some(comment)).await;
    }

    async fn data(&self, leg: Leg, from: Side, bytes: &Bytes, comment: Option<String>) {
        if self.sink.is_none() {
            return;
        }
        if self.is_raw(leg) {
            // Plaintext of a raw leg: its ciphertext is what the capture holds.
            let attach = comment
                .filter(|_| from == proxy_side(leg))
                .map(|c| (leg, c));
            let key = self.key(leg);
            self.record_with(attach, |unattached| {
                unattached.map(|note| CaptureEvent::Data {
                    key,
                    from,
                    bytes: Bytes::new(),
                    at: SystemTime::now(),
                    comment: Some(note),
                })
            })
            .await;
            return;
        }
        self.record(CaptureEvent::Data {
            key: self.key(leg),
            from,
            bytes: bytes.clone(),
            at: SystemTime::now(),
            comment,
        })
        .await;
    }

    /// The source of `direction` shut down its write half.
    pub async fn source_fin(&self, direction: Direction) {
        let (leg, from) = source_of(direction);
        self.fin(leg, from, None).await;
    }

    /// faultline shut down its write half toward the destination of `direction`.
    pub async fn destination_fin(&self, direction: Direction) {
        let (leg, from) = destination_of(direction);
        self.fin(leg, from, None).await;
    }

    /// The peer on `leg` shut down its write half.
    pub async fn peer_fin(&self, leg: Leg) {
        self.fin(leg, peer_side(leg), None).await;
    }

    /// faultline shut down its write half on `leg`.
    pub async fn proxy_fin(&self, leg: Leg, comment: Option<String>) {
        self.fin(leg, proxy_side(leg), comment).await;
    }

    async fn fin(&self, leg: Leg, from: Side, comment: Option<String>) {
        if self.sink.is_none() {
            return;
        }
        self.record(CaptureEvent::Fin {
            key: self.key(leg),
            from,
            at: SystemTime::now(),
            comment,
        })
        .await;
    }

    /// The peer on `leg` reset it.
    pub async fn peer_rst(&self, leg: Leg) {
        self.rst(leg, peer_side(leg), None).await;
    }

    /// faultline reset `leg`.
    pub async fn proxy_rst(&self, leg: Leg, comment: Option<String>) {
        self.rst(leg, proxy_side(leg), comment).await;
    }

    async fn rst(&self, leg: Leg, from: Side, comment: Option<String>) {
        if self.sink.is_none() {
            return;
        }
        self.record(CaptureEvent::Rst {
            key: self.key(leg),
            from,
            at: SystemTime::now(),
            comment,
        })
        .await;
    }

    /// The leg is gone; its flow state can be freed.
    pub async fn closed(&self, leg: Leg) {
        if self.sink.is_none() {
            return;
        }
        self.record(CaptureEvent::Closed { key: self.key(leg) })
            .await;
    }
}

/// The leg a direction reads from, and who sends on it.
fn source_of(direction: Direction) -> (Leg, Side) {
    match direction {
        Direction::ClientToUpstream => (Leg::Client, Side::Initiator),
        Direction::UpstreamToClient => (Leg::Upstream, Side::Responder),
    }
}

/// The leg a direction writes to, and faultline's side on it.
fn destination_of(direction: Direction) -> (Leg, Side) {
    match direction {
        Direction::ClientToUpstream => (Leg::Upstream, Side::Initiator),
        Direction::UpstreamToClient => (Leg::Client, Side::Responder),
    }
}

/// faultline's side of a leg: it accepts the client leg and opens the upstream leg.
fn proxy_side(leg: Leg) -> Side {
    match leg {
        Leg::Client => Side::Responder,
        Leg::Upstream => Side::Initiator,
    }
}

/// The other peer's side of a leg (the client, or the upstream).
fn peer_side(leg: Leg) -> Side {
    proxy_side(leg).peer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_map_to_legs_and_sides() {
        assert_eq!(
            source_of(Direction::ClientToUpstream),
            (Leg::Client, Side::Initiator)
        );
        assert_eq!(
            destination_of(Direction::ClientToUpstream),
            (Leg::Upstream, Side::Initiator)
        );
        assert_eq!(
            source_of(Direction::UpstreamToClient),
            (Leg::Upstream, Side::Responder)
        );
        assert_eq!(
            destination_of(Direction::UpstreamToClient),
            (Leg::Client, Side::Responder)
        );
        assert_eq!(peer_side(Leg::Client), Side::Initiator);
        assert_eq!(peer_side(Leg::Upstream), Side::Responder);
    }
}
