//! The ClientHello peek must survive any bytes, and a verdict reached on a prefix must not change
//! as more bytes arrive (the proxy decides on the first verdict that is not "need more"). The
//! same bytes go to the ServerHello reader, which `inspect` runs on a capture's TLS records.
#![no_main]

use faultline::tls::server_hello::parse_server_hello;
use faultline::tls::{peek_client_hello, Peek};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_server_hello(data);
    let full = peek_client_hello(data);
    if let Peek::Tls(info) = &full {
        assert!(info.len <= data.len());
    }
    // About 32 prefixes per input keeps long inputs fast.
    let step = (data.len() / 32).max(1);
    for end in (0..data.len()).step_by(step) {
        let early = peek_client_hello(&data[..end]);
        if early != Peek::NeedMore {
            assert_eq!(early, full, "decided at {end} bytes, changed later");
        }
    }
});
