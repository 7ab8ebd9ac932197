//! Fuzzes the whole inspection pipeline (reader, decoder, reassembly, HTTP, report) on arbitrary bytes.
#![no_main]

use faultline::inspect::{inspect_bytes, InspectOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = inspect_bytes(data, &InspectOptions::default()) {
        let _ = report.render_text();
        let _ = report.to_json();
        assert!(report.exit_code() <= 1);
    }
});
