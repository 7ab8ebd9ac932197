//! The fault engine through the HTTP/2 session: random rule sets over random HTTP/2
//! conversations, chunkings and clocks must never panic, lose or repeat a byte of a plan, or
//! leave a receiver's HPACK table out of step with its sender's.
#![no_main]

use faultline::session::h2_conformance::run_case;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = run_case(data) {
        panic!("{violation}");
    }
});
