//! The HTTP/1 framer must survive any bytes, split anywhere, in both directions.
#![no_main]

use faultline::http::Http1Conversation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where to split request bytes from response bytes.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (split as usize * rest.len()) / 255;
    let (requests, responses) = rest.split_at(cut.min(rest.len()));
    let mut conversation = Http1Conversation::new();
    for piece in requests.chunks(7) {
        let _ = conversation.feed_request(piece);
    }
    for piece in responses.chunks(11) {
        let _ = conversation.feed_response(piece);
    }
    let _ = conversation.request_eof();
    let _ = conversation.response_eof();
});
