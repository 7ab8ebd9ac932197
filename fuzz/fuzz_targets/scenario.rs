//! Scenario loading must turn any text into a scenario or a located error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = faultline::scenario::Scenario::from_toml(text, "fuzz.toml", "fuzz");
    }
});
