//! The fault engine through the HTTP/1 session: random rule sets over random framings and
//! chunkings must never panic, lose, repeat or reorder a byte, or answer where no rule says.
#![no_main]

use faultline::session::conformance::run_case;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = run_case(data) {
        panic!("{violation}");
    }
});
