//! Flow-control windows (RFC 9113 §6.9) and the credit faultline owes a sender for DATA it discarded.
//!
//! HTTP/2 counts every byte of a DATA frame's payload (padding and the Pad Length byte included)
//! against the sender's connection window and stream window; only the receiver's WINDOW_UPDATE
//! gives it back. When faultline discards DATA (frames of a stream it reset, the tail of a frame it
//! cut short), the receiver never sees those bytes and never returns their credit: the sender's
//! *connection* window shrinks for good and, after 64 KiB by default, every other stream on the
//! connection starves. So faultline returns that credit itself with a connection-level
//! WINDOW_UPDATE toward the sender. Stream-level credit needs no return: the stream is over.

use super::frame::{FrameHeader, FrameType};

/// A sender's window: may go negative after a SETTINGS_INITIAL_WINDOW_SIZE decrease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub i64);

impl Window {
    /// The RFC's initial window for the connection and (by default) every stream.
    pub const INITIAL: Window = Window(65_535);

    /// DATA of `len` flow-controlled bytes was sent.
    pub fn consume(&mut self, len: u64) {
        self.0 -= len as i64;
    }

    /// A WINDOW_UPDATE of `increment` arrived (or a SETTINGS change of `delta`).
    pub fn grant(&mut self, increment: i64) {
        self.0 += increment;
    }

    /// Bytes the sender may still send (0 when exhausted or negative).
    pub fn available(self) -> u64 {
        self.0.max(0) as u64
    }
}

/// Flow-controlled bytes in a frame: the whole payload of a DATA frame, 0 for any other frame.
pub fn flow_controlled(header: &FrameHeader) -> u64 {
    match header.kind {
        FrameType::Data => u64::from(header.length),
        _ => 0,
    }
}

/// Credit to return to the sender when a DATA frame of `header` reaches the receiver as a frame
/// of `kept_payload` bytes (0 when discarded entirely): what the sender spent that the receiver
/// will never see.
pub fn credit_for(header: &FrameHeader, kept_payload: u32) -> u64 {
    flow_controlled(header).saturating_sub(u64::from(kept_payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::{StreamId, FLAG_PADDED};

    fn data(length: u32, flags: u8) -> FrameHeader {
        FrameHeader {
            length,
            kind: FrameType::Data,
            flags,
            stream: StreamId(1),
        }
    }

    #[test]
    fn padding_counts_against_the_window() {
        assert_eq!(flow_controlled(&data(100, FLAG_PADDED)), 100);
        assert_eq!(credit_for(&data(100, FLAG_PADDED), 0), 100);
        assert_eq!(credit_for(&data(100, 0), 40), 60);
        assert_eq!(credit_for(&data(100, 0), 200), 0);
    }

    #[test]
    fn a_window_can_go_negative_but_offers_nothing() {
        let mut window = Window::INITIAL;
        window.consume(65_535);
        window.grant(-10);
        assert_eq!(window.available(), 0);
        window.grant(20);
        assert_eq!(window.available(), 10);
    }
}
