//! A response body faultline itself sends on one HTTP/2 stream (a `respond` answer), cut into
//! DATA frames the client's SETTINGS_MAX_FRAME_SIZE allows and sent only as far as the client's
//! connection and stream flow-control windows reach; the rest waits for its WINDOW_UPDATE.
//!
//! A receiver treats a frame above its maximum frame size, or DATA beyond a window it granted,
//! as a connection error (RFC 9113 §4.2, §6.9.1): every other stream on the connection dies
//! with it. So a body is never written in one piece; what the windows hold back goes out when
//! the client grants more.

use super::build;
use super::frame::{StreamId, DEFAULT_MAX_FRAME_SIZE};

/// The part of a body not yet sent, and the stream window it has to go through.
#[derive(Debug, Clone)]
pub struct OwnBody {
    stream: StreamId,
    rest: Vec<u8>,
    /// Bytes of the body sent so far.
    sent: u64,
    /// Stream-level WINDOW_UPDATE increments the client granted on the stream.
    granted: u64,
}

/// DATA frames to write now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The frames' bytes (empty when the windows hold everything back).
    pub frames: Vec<u8>,
    /// Payload bytes in them.
    pub payload: u64,
    /// Whether the last of them carries END_STREAM (the body is complete).
    pub finished: bool,
}

impl OwnBody {
    /// The body `body` of stream `stream`, none of it sent yet.
    pub fn new(stream: StreamId, body: Vec<u8>) -> OwnBody {
        OwnBody {
            stream,
            rest: body,
            sent: 0,
            granted: 0,
        }
    }

    /// Payload bytes still to send.
    pub fn left(&self) -> usize {
        self.rest.len()
    }

    /// The client granted `increment` more bytes on this stream.
    pub fn grant(&mut self, increment: u32) {
        self.granted += u64::from(increment);
    }

    /// The stream window the body may still use when the client's current
    /// SETTINGS_INITIAL_WINDOW_SIZE is `initial` (a change of that setting moves the window of
    /// every open stream, RFC 9113 §6.9.2, so it is read anew each time).
    pub fn stream_window(&self, initial: u32) -> u64 {
        (u64::from(initial) + self.granted).saturating_sub(self.sent)
    }

    /// Takes as much of the body as `connection` window bytes, the stream window (under the
    /// initial window size `initial`) and frames of at most `max_frame` payload bytes allow.
    /// `max_frame` below the protocol's minimum (a peer that sent nothing yet) counts as that
    /// minimum, which every peer accepts.
    pub fn take(&mut self, connection: u64, initial: u32, max_frame: u32) -> Sent {
        let max_frame = max_frame.max(DEFAULT_MAX_FRAME_SIZE) as usize;
        let allowed = connection.min(self.stream_window(initial));
        let n = (self.rest.len() as u64).min(allowed) as usize;
        let finished = n == self.rest.len();
        let mut frames = Vec::with_capacity(n + 9 * (n / max_frame + 1));
        let payload: Vec<u8> = self.rest.drain(..n).collect();
        let mut chunks = payload.chunks(max_frame).peekable();
        if n == 0 && finished {
            // An empty body: END_STREAM alone.
            frames.extend_from_slice(&build::data_header(self.stream, 0, true));
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            frames.extend_from_slice(&build::data_header(
                self.stream,
                chunk.len() as u32,
                finished && last,
            ));
            frames.extend_from_slice(chunk);
        }
        self.sent += n as u64;
        Sent {
            frames,
            payload: n as u64,
            finished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::FLAG_END_STREAM;

    /// (payload length, END_STREAM) of each DATA frame in `bytes`.
    fn frames(mut bytes: &[u8]) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        while bytes.len() >= 9 {
            let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
            out.push((len, bytes[4] & FLAG_END_STREAM != 0));
            bytes = &bytes[9 + len..];
        }
        out
    }

    #[test]
    fn a_large_body_is_cut_at_the_maximum_frame_size() {
        let mut body = OwnBody::new(StreamId(1), vec![7; 40_000]);
        let sent = body.take(1 << 20, 1 << 20, 0);
        assert!(sent.finished);
        assert_eq!(sent.payload, 40_000);
        assert_eq!(
            frames(&sent.frames),
            [(16_384, false), (16_384, false), (7_232, true)]
        );
        let mut body = OwnBody::new(StreamId(1), vec![7; 40_000]);
        assert_eq!(
            frames(&body.take(1 << 20, 1 << 20, 32_768).frames),
            [(32_768, false), (7_232, true)]
        );
    }

    #[test]
    fn the_windows_hold_the_rest_until_the_client_grants_more() {
        let mut body = OwnBody::new(StreamId(3), vec![1; 100_000]);
        // The connection window is the tighter one.
        let sent = body.take(10_000, 65_535, 16_384);
        assert_eq!((sent.payload, sent.finished), (10_000, false));
        // Then the stream window (65,535 less the 10,000 sent).
        let sent = body.take(1 << 30, 65_535, 16_384);
        assert_eq!((sent.payload, sent.finished), (55_535, false));
        assert_eq!(body.left(), 34_465);
        // Nothing until a stream WINDOW_UPDATE.
        let sent = body.take(1 << 30, 65_535, 16_384);
        assert_eq!((sent.payload, sent.frames.len()), (0, 0));
        body.grant(20_000);
        assert_eq!(body.take(1 << 30, 65_535, 16_384).payload, 20_000);
        // A larger SETTINGS_INITIAL_WINDOW_SIZE opens the window of the stream too.
        let sent = body.take(1 << 30, 100_000, 16_384);
        assert_eq!((sent.payload, sent.finished), (14_465, true));
        assert_eq!(frames(&sent.frames), [(14_465, true)]);
    }

    #[test]
    fn an_empty_body_is_one_end_stream() {
        let mut body = OwnBody::new(StreamId(5), Vec::new());
        let sent = body.take(0, 0, 0);
        assert!(sent.finished);
        assert_eq!(frames(&sent.frames), [(0, true)]);
    }
}
