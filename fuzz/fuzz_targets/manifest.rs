//! Fuzzes the `--expect` manifest parser: any bytes give a manifest or a `FILE:LINE: message`
//! error, never a panic, and an accepted manifest has one entry per non-comment line at most.
#![no_main]

use faultline::inspect::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Manifest::parse("m.txt", data) {
        Ok(manifest) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(manifest.entries.len() <= lines);
        }
        Err(e) => assert!(e.to_string().starts_with("m.txt:"), "{e}"),
    }
});
