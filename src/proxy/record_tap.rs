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
//! the writer embeds ahead of it. Without a raw capture the adapter only passes calls through.

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

/// `inner` (the leg's socket), noting what crosses it when `recorder` is set.
#[derive(Debug)]
pub struct RecordTap<S> {
    inner: S,
    recorder: Option<RawRecorder>,
}

impl<S> RecordTap<S> {
    /// Wraps `inner`; with `None`, calls only pass through.
    pub fn new(inner: S, recorder: Option<RawRecorder>) -> RecordTap<S> {
        RecordTap { inner, recorder }
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
        if let (Poll::Ready(Ok(())), Some(recorder)) = (&polled, &self.recorder) {
            recorder.read(&buf.filled()[before..]);
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
