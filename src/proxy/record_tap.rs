//! The record tap: an I/O adapter between an intercepted leg's TCP socket and its TLS session
//! that notes every byte read from or written to the socket — handshake, records, alerts, all
//! ciphertext — for `capture_tls = "raw"` captures, where the capture must hold what crossed the
//! socket, byte for byte, as it does for plain TCP.
//!
//! Reads and writes happen inside `poll_*` calls, which cannot await the capture channel, so the
//! tap queues them ([`RawEvents`]) and the connection's [`Tap`](super::tap::Tap) releases the
//! queue, in order, at its next event. That delay is also what keeps a raw capture decryptable
//! in one pass: during the handshakes nothing releases the queue, so a peer's encrypted flight
//! (read before rustls has logged the secret that decrypts it) reaches the capture writer only
//! after both handshakes completed, i.e. after every secret it needs is in the key log, which
//! the writer embeds ahead of it. Without a raw capture the adapter only passes calls through,
//! following where the bytes read end in the record layer ([`RecordFraming`]), which is how a
//! peer's FIN without close_notify is told from a stream cut inside a record.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::capture::{Leg, Side};

/// What the record taps of one connection noted and the tap has not released yet.
#[derive(Debug, Default)]
pub struct RawEvents {
    queue: Mutex<VecDeque<RawEvent>>,
    /// Which legs are recorded raw (their plaintext is then not recorded).
    raw: [AtomicBool; 2],
    /// Held while releasing, so two pumps releasing at once keep each leg's bytes in order.
    pub(super) releasing: Mutex<()>,
}

/// Bytes that crossed a leg's socket.
#[derive(Debug)]
pub struct RawEvent {
    /// The leg.
    pub leg: Leg,
    /// Who sent them.
    pub from: Side,
    /// The bytes, as they crossed.
    pub bytes: Bytes,
    /// When.
    pub at: SystemTime,
}

impl RawEvents {
    /// Marks `leg` as recorded raw and returns what its record tap reports through.
    pub fn recorder(self: &Arc<Self>, leg: Leg) -> RawRecorder {
        self.raw[leg.index()].store(true, Relaxed);
        RawRecorder {
            events: self.clone(),
            leg,
        }
    }

    /// Whether `leg` is recorded raw.
    pub fn is_raw(&self, leg: Leg) -> bool {
        self.raw[leg.index()].load(Relaxed)
    }

    /// Whether any leg is recorded raw (else nothing is ever queued).
    pub fn any_raw(&self) -> bool {
        self.raw.iter().any(|r| r.load(Relaxed))
    }

    /// Notes bytes that crossed `leg` from `from`.
    pub fn push(&self, leg: Leg, from: Side, bytes: Bytes) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(RawEvent {
                leg,
                from,
                bytes,
                at: SystemTime::now(),
            });
    }

    /// Everything noted so far, oldest first.
    pub fn take(&self) -> Vec<RawEvent> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }
}

/// One leg's handle on its connection's [`RawEvents`].
#[derive(Debug, Clone)]
pub struct RawRecorder {
    events: Arc<RawEvents>,
    leg: Leg,
}

impl RawRecorder {
    /// faultline's side of the leg (it accepts the client leg, opens the upstream leg).
    fn proxy_side(&self) -> Side {
        match self.leg {
            Leg::Client => Side::Responder,
            Leg::Upstream => Side::Initiator,
        }
    }

    /// Bytes faultline read from the leg's peer.
    pub fn read(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let from = self.proxy_side().peer();
            self.events
                .push(self.leg, from, Bytes::copy_from_slice(bytes));
        }
    }

    /// Bytes faultline wrote to the leg's peer.
    pub fn wrote(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.events
                .push(self.leg, self.proxy_side(), Bytes::copy_from_slice(bytes));
        }
    }
}

/// Where the bytes read so far end in the TLS record layer: a record is a 5-byte header
/// (type, version, 16-bit length) and that many bytes. Kept for every intercepted leg, so that a
/// peer's TCP FIN without close_notify can be told apart: after a whole record it is how many TLS
/// stacks end a stream (Python's `ssl` closed without `unwrap`, moto, many servers after
/// `Connection: close`) and is read as the end of the stream; inside a record the stream was
/// cut short.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordFraming {
    /// Header bytes of the next record seen so far (0 to 4), and their values.
    header: [u8; 5],
    header_len: u8,
    /// Bytes of the current record's body still to come.
    remaining: usize,
}

impl RecordFraming {
    /// Takes bytes read from the socket, in order.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(bytes.len());
                self.remaining -= take;
                bytes = &bytes[take..];
                continue;
            }
            let at = usize::from(self.header_len);
            let take = (5 - at).min(bytes.len());
            self.header[at..at + take].copy_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if at + take == 5 {
                self.header_len = 0;
                self.remaining = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
            } else {
                self.header_len = (at + take) as u8;
            }
        }
    }

    /// Whether the bytes so far end exactly where a record ends (or nothing was read).
    pub fn at_record_end(&self) -> bool {
        self.header_len == 0 && self.remaining == 0
    }
}

/// Which peers of one connection ended their TLS stream with a bare FIN (no close_notify)
/// after a whole record, by [`Leg::index`]. Both legs' taps share it, so that the end is
/// carried to the other peer as it came: faultline never makes up a close_notify its peer did
/// not send (a client reading a body until the close would take a cut stream for a whole one),
/// and a close_notify a client did not read makes its kernel answer the close with a RST
/// (Python clients reading exactly Content-Length bytes did, on every moto download).
#[derive(Debug, Default)]
pub struct BareEnds([AtomicBool; 2]);

/// `inner` (the leg's socket), noting what crosses it when `recorder` is set, and following
/// the record framing of what is read (see [`RecordFraming`]).
#[derive(Debug)]
pub struct RecordTap<S> {
    inner: S,
    recorder: Option<RawRecorder>,
    framing: RecordFraming,
    /// The leg this tap is under, and its connection's [`BareEnds`].
    leg: Leg,
    ends: Arc<BareEnds>,
}

impl<S> RecordTap<S> {
    /// Wraps `inner`; with `None`, calls only pass through.
    pub fn new(inner: S, recorder: Option<RawRecorder>) -> RecordTap<S> {
        RecordTap {
            inner,
            recorder,
            framing: RecordFraming::default(),
            leg: Leg::Client,
            ends: Arc::default(),
        }
    }

    /// The tap under `leg`, sharing `ends` with the other leg's tap.
    pub fn on_leg(mut self, leg: Leg, ends: Arc<BareEnds>) -> RecordTap<S> {
        self.leg = leg;
        self.ends = ends;
        self
    }

    /// This leg's peer ended its TLS stream with a bare FIN after a whole record.
    pub fn note_bare_end(&self) {
        self.ends.0[self.leg.index()].store(true, Relaxed);
    }

    /// Whether the other leg's peer ended its TLS stream with a bare FIN after a whole record
    /// (so this leg's end, carrying it across, is a bare FIN too).
    pub fn other_ended_bare(&self) -> bool {
        self.ends.0[self.leg.other().index()].load(Relaxed)
    }

    /// Bytes of this leg read before the tap was put on the socket (a peeked ClientHello,
    /// replayed above the tap): they start the record framing.
    pub fn already_read(&mut self, bytes: &[u8]) {
        self.framing.feed(bytes);
    }

    /// Whether everything read from the socket so far ends on a whole TLS record.
    pub fn at_record_end(&self) -> bool {
        self.framing.at_record_end()
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The socket, unwrapped (what crosses it from then on is not noted).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RecordTap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let read = &buf.filled()[before..];
            self.framing.feed(read);
            if let Some(recorder) = &self.recorder {
                recorder.read(read);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RecordTap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let (Poll::Ready(Ok(n)), Some(recorder)) = (&polled, &self.recorder) {
            recorder.wrote(&data[..*n]);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(recorder)) = (&polled, &self.recorder) {
            let mut left = *n;
            for buf in bufs {
                if left == 0 {
                    break;
                }
                let take = left.min(buf.len());
                recorder.wrote(&buf[..take]);
                left -= take;
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_and_writes_are_noted_in_order_with_their_sides() {
        let events = Arc::new(RawEvents::default());
        assert!(!events.any_raw());
        let (near, mut far) = tokio::io::duplex(64);
        let mut tap = RecordTap::new(near, Some(events.recorder(Leg::Upstream)));
        assert!(events.is_raw(Leg::Upstream) && !events.is_raw(Leg::Client));
        tap.write_all(b"hello").await.unwrap();
        far.write_all(b"world").await.unwrap();
        let mut got = [0u8; 5];
        tap.read_exact(&mut got).await.unwrap();
        let noted: Vec<(Leg, Side, Bytes)> = events
            .take()
            .into_iter()
            .map(|e| (e.leg, e.from, e.bytes))
            .collect();
        assert_eq!(
            noted,
            vec![
                (Leg::Upstream, Side::Initiator, Bytes::from_static(b"hello")),
                (Leg::Upstream, Side::Responder, Bytes::from_static(b"world")),
            ]
        );
        assert!(events.take().is_empty());
    }

    #[test]
    fn record_framing_knows_when_the_bytes_end_on_a_whole_record() {
        let mut records = vec![0x17, 0x03, 0x03, 0x00, 0x03, b'a', b'b', b'c'];
        records.extend_from_slice(&[0x15, 0x03, 0x03, 0x00, 0x00]); // an empty record
        records.extend_from_slice(&[0x17, 0x03, 0x03, 0x01, 0x00]);
        records.extend(std::iter::repeat_n(7u8, 256));
        let ends: Vec<usize> = vec![0, 8, 13, records.len()];
        // Fed whole, and fed in every split into two reads.
        for split in 0..=records.len() {
            let mut framing = RecordFraming::default();
            framing.feed(&records[..split]);
            assert_eq!(
                framing.at_record_end(),
                ends.contains(&split),
                "split at {split}"
            );
            framing.feed(&records[split..]);
            assert!(framing.at_record_end(), "split at {split}");
        }
        // One byte at a time.
        let mut framing = RecordFraming::default();
        for (i, byte) in records.iter().enumerate() {
            framing.feed(std::slice::from_ref(byte));
            assert_eq!(
                framing.at_record_end(),
                ends.contains(&(i + 1)),
                "after {}",
                i + 1
            );
        }
    }

    #[tokio::test]
    async fn the_tap_follows_the_framing_of_what_it_reads() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut tap = RecordTap::new(near, None);
        tap.already_read(&[0x16, 0x03]);
        assert!(!tap.at_record_end());
        far.write_all(&[0x01, 0x00, 0x01, 0xff]).await.unwrap();
        let mut got = [0u8; 4];
        tap.read_exact(&mut got).await.unwrap();
        assert!(tap.at_record_end());
    }

    #[tokio::test]
    async fn a_bare_end_noted_on_one_leg_is_seen_from_the_other() {
        let ends = Arc::new(BareEnds::default());
        let (a, _) = tokio::io::duplex(8);
        let (b, _) = tokio::io::duplex(8);
        let client = RecordTap::new(a, None).on_leg(Leg::Client, ends.clone());
        let upstream = RecordTap::new(b, None).on_leg(Leg::Upstream, ends);
        assert!(!client.other_ended_bare() && !upstream.other_ended_bare());
        upstream.note_bare_end();
        assert!(client.other_ended_bare());
        assert!(!upstream.other_ended_bare());
    }

    #[tokio::test]
    async fn without_a_recorder_nothing_is_noted() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut tap = RecordTap::new(near, None);
        tap.write_all(b"x").await.unwrap();
        let mut got = [0u8; 1];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"x");
    }
}
