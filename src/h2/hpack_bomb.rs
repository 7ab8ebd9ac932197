//! The "HPACK bomb" of the hostile-input trial, built once for the tests of the decoder, the
//! conversation, the proxy's session and `inspect`: one 4,000-byte entry inserted into the
//! dynamic table, then header blocks of one-byte references to it (16,000 make a 16 KB block
//! decoding to 64 MB; 62 a 65-byte block decoding to 250 KB, under the list limit).

use super::frame::PREFACE;
use super::frame::{FrameHeader, FrameType, StreamId, FLAG_END_HEADERS, FLAG_END_STREAM};
use super::hpack_encode::encode_integer;

/// `:method GET`, `:scheme http`, `:path /` from the static table.
const GET: [u8; 3] = [0x82, 0x86, 0x84];

/// A literal with incremental indexing: name `x`, a 4,000-byte value.
pub(crate) fn large_entry() -> Vec<u8> {
    let mut out = vec![0x40, 0x01, b'x'];
    encode_integer(4000, 7, 0x00, &mut out);
    out.extend(std::iter::repeat_n(b'v', 4000));
    out
}

/// A GET that inserts [`large_entry`].
pub(crate) fn inserting_block() -> Vec<u8> {
    let mut out = GET.to_vec();
    out.extend(large_entry());
    out
}

/// A GET of `refs` references to the newest dynamic entry (index 62).
pub(crate) fn references_block(refs: usize) -> Vec<u8> {
    let mut out = GET.to_vec();
    out.extend(std::iter::repeat_n(0xbe, refs));
    out
}

/// A HEADERS frame (END_HEADERS, END_STREAM) on `stream` carrying `block`.
pub(crate) fn headers_frame(stream: u32, block: &[u8]) -> Vec<u8> {
    let mut out = FrameHeader {
        length: block.len() as u32,
        kind: FrameType::Headers,
        flags: FLAG_END_HEADERS | FLAG_END_STREAM,
        stream: StreamId(stream),
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(block);
    out
}

/// The client's side: the preface, the inserting GET on stream 1, then `streams` GETs of `refs`
/// references each (one HEADERS frame each, nothing between).
pub(crate) fn client(streams: u32, refs: usize) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(headers_frame(1, &inserting_block()));
    let bomb = references_block(refs);
    for i in 0..streams {
        out.extend(headers_frame(3 + 2 * i, &bomb));
    }
    out
}
