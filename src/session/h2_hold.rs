//! Frames of single HTTP/2 streams that a delaying fault (`latency`, a `stall` with a
//! `duration`) holds back in one direction while the other streams keep flowing: their exact
//! bytes wait here until their release instant, then go out unchanged at a frame boundary.
//!
//! An HTTP/2 connection is one TCP byte stream: delaying a stream's frame *in place* delays
//! every later frame of every stream (head-of-line blocking). Frames of different streams may be
//! reordered, though, as long as each stream keeps its own order and HPACK state is not reordered,
//! so the session takes a delayed stream's frames out of the byte stream and puts them back
//! later. This module is the queue; the session decides what may be held (DATA, and the
//! stream's header blocks while no other block would pass one that changes the HPACK table) and
//! where it must stop holding (a barrier).

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::time::Instant;

use crate::fault::plan::Mark;
use crate::h2::StreamId;

/// Most bytes held per direction. Held frames are copies of bytes already read from the sender,
/// so a stream whose peer keeps sending (a large download with a long latency) would otherwise
/// grow the proxy's memory without bound; flow control alone does not bound it, since a sender
/// may advertise windows of up to 2 GiB. 4 MiB covers the default 64 KiB windows of gRPC and
/// curl many times over (grpc-core's BDP probe raises them to a few MiB); past it the session
/// stops holding and delays the whole direction instead, as a slow middlebox would.
pub const MAX_HELD_BYTES: usize = 4 << 20;

/// Most frames held per direction. The session looks through the held frames for every frame it
/// plans (is its stream held? when does its stream's last held frame leave?), so a peer cutting
/// its data into tiny DATA frames must not make that cost grow with the byte cap. 4096 frames is
/// 64 MiB of default-sized (16 KiB) frames, so ordinary peers meet the byte cap first.
pub const MAX_HELD_FRAMES: usize = 4096;

/// One frame (or one whole header block) of a stream, held back.
#[derive(Debug, Clone)]
pub struct HeldFrame {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its bytes exactly as the sender wrote them.
    pub bytes: Bytes,
    /// When it may leave.
    pub release: Instant,
    /// The capture comment it carries when it leaves: the rule's own mark on the first frame a
    /// rule delayed, a note naming the rule and the delay on the first of a later stretch of the
    /// stream's held frames, none on the frames that follow in a stretch.
    pub mark: Option<Mark>,
    /// Connection-window credit the receiver never returns if the frame is dropped (the whole
    /// DATA payload with padding; 0 for a header block).
    pub credit: u64,
    /// A whole header block (HEADERS or PUSH_PROMISE with its CONTINUATIONs), not DATA.
    pub block: bool,
    /// A header block that changes the receiver's HPACK table (incremental indexing, a size
    /// update): every later block depends on it.
    pub touches: bool,
}

/// The frames held in one direction, in the order they arrived.
#[derive(Debug, Default)]
pub struct HeldFrames {
    frames: VecDeque<HeldFrame>,
    bytes: usize,
    /// Held header blocks.
    blocks: usize,
    /// Held header blocks that change the HPACK table.
    touching: usize,
}

impl HeldFrames {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether frames of `stream` are held: its later frames must follow them.
    pub fn holds(&self, stream: StreamId) -> bool {
        self.frames.iter().any(|f| f.stream == stream)
    }

    /// Whether a header block is held: a later block that changes the HPACK table must not
    /// pass it.
    pub fn holds_block(&self) -> bool {
        self.blocks > 0
    }

    /// Whether a held header block changes the HPACK table: no later block may pass it.
    pub fn holds_touching_block(&self) -> bool {
        self.touching > 0
    }

    /// Whether one more frame of `len` bytes fits under [`MAX_HELD_BYTES`] and
    /// [`MAX_HELD_FRAMES`].
    pub fn fits(&self, len: usize) -> bool {
        self.bytes + len <= MAX_HELD_BYTES && self.frames.len() < MAX_HELD_FRAMES
    }

    /// The release instant of the last frame of `stream` held.
    pub fn last_release(&self, stream: StreamId) -> Option<Instant> {
        self.frames
            .iter()
            .rev()
            .find(|f| f.stream == stream)
            .map(|f| f.release)
    }

    /// The earliest release instant.
    pub fn next_release(&self) -> Option<Instant> {
        self.frames.iter().map(|f| f.release).min()
    }

    /// Holds `frame` behind the frames of its stream already held: its release is moved to no
    /// earlier than theirs, so a stream's frames leave in the order they came.
    pub fn push(&mut self, mut frame: HeldFrame) {
        if let Some(last) = self.last_release(frame.stream) {
            frame.release = frame.release.max(last);
        }
        self.bytes += frame.bytes.len();
        self.blocks += usize::from(frame.block);
        self.touching += usize::from(frame.touches);
        self.frames.push_back(frame);
    }

    /// The frames due at `now`, in the order they came. Each stream's releases never decrease,
    /// so a stream's frame is due only when all its earlier frames are.
    pub fn take_due(&mut self, now: Instant) -> Vec<HeldFrame> {
        self.take_where(|f| f.release <= now)
    }

    /// Every held frame of `stream`, in order.
    pub fn take_stream(&mut self, stream: StreamId) -> Vec<HeldFrame> {
        self.take_where(|f| f.stream == stream)
    }

    /// Every held frame, in order.
    pub fn take_all(&mut self) -> Vec<HeldFrame> {
        self.take_where(|_| true)
    }

    fn take_where(&mut self, mut wanted: impl FnMut(&HeldFrame) -> bool) -> Vec<HeldFrame> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.frames.len());
        for frame in self.frames.drain(..) {
            if wanted(&frame) {
                taken.push(frame);
            } else {
                kept.push_back(frame);
            }
        }
        self.frames = kept;
        self.bytes = self.frames.iter().map(|f| f.bytes.len()).sum();
        self.blocks = self.frames.iter().filter(|f| f.block).count();
        self.touching = self.frames.iter().filter(|f| f.touches).count();
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(stream: u32, at: Instant, byte: u8) -> HeldFrame {
        HeldFrame {
            stream: StreamId(stream),
            bytes: Bytes::from(vec![byte; 10]),
            release: at,
            mark: Some(Mark::proxy("held")),
            credit: 1,
            block: false,
            touches: false,
        }
    }

    #[test]
    fn a_stream_leaves_in_order_even_when_a_later_frame_is_due_earlier() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut held = HeldFrames::default();
        held.push(frame(1, t0 + ms(100), 1));
        held.push(frame(3, t0 + ms(10), 2));
        // Jitter drew a shorter delay for stream 1's second frame: it still waits for the first.
        held.push(frame(1, t0 + ms(50), 3));
        assert_eq!(held.last_release(StreamId(1)), Some(t0 + ms(100)));
        assert_eq!(held.next_release(), Some(t0 + ms(10)));
        let due: Vec<u8> = held
            .take_due(t0 + ms(60))
            .iter()
            .map(|f| f.bytes[0])
            .collect();
        assert_eq!(due, vec![2]);
        let due: Vec<u8> = held
            .take_due(t0 + ms(100))
            .iter()
            .map(|f| f.bytes[0])
            .collect();
        assert_eq!(due, vec![1, 3]);
        assert!(held.is_empty());
        assert_eq!(held.bytes(), 0);
    }

    #[test]
    fn the_cap_and_the_block_count_follow_what_is_held() {
        let t0 = Instant::now();
        let mut held = HeldFrames::default();
        assert!(held.fits(MAX_HELD_BYTES));
        assert!(!held.fits(MAX_HELD_BYTES + 1));
        for _ in 0..MAX_HELD_FRAMES - 1 {
            held.push(frame(9, t0, 0));
        }
        assert!(held.fits(1));
        held.push(frame(9, t0, 0));
        assert!(!held.fits(1), "the frame count is capped too");
        held.take_stream(StreamId(9));
        held.push(frame(5, t0, 1));
        let mut block = frame(7, t0, 2);
        block.credit = 0;
        block.block = true;
        block.touches = true;
        held.push(block);
        assert!(held.holds_block());
        assert!(held.holds_touching_block());
        assert!(!held.fits(MAX_HELD_BYTES - 19));
        assert_eq!(held.take_stream(StreamId(7)).len(), 1);
        assert!(!held.holds_block());
        assert!(!held.holds_touching_block());
        assert!(held.holds(StreamId(5)));
        assert_eq!(held.take_all().len(), 1);
        assert!(!held.holds(StreamId(5)));
    }
}
